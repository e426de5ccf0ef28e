"""Records → API shapes (:mod:`bftscope.api.schemas`). Timestamps are RFC 3339 UTC with microseconds."""

from __future__ import annotations

from datetime import datetime

from bftscope.api import schemas as s
from bftscope.control import records as r

__all__ = ["iso", "project", "simulation", "user"]


def iso(t: datetime) -> str:
    return t.isoformat(timespec="microseconds") + "Z"


def user(u: r.User) -> s.User:
    return s.User(id=u.id, username=u.username, email=u.email, isAdmin=u.is_admin, createdAt=iso(u.created_at),
                  updatedAt=iso(u.updated_at))  # fmt: skip


def project(p: r.Project) -> s.Project:
    return s.Project(id=p.id, name=p.name, description=p.description, userId=p.user_id, createdAt=iso(p.created_at),
                     updatedAt=iso(p.updated_at))  # fmt: skip


def simulation(m: r.Simulation) -> s.Simulation:
    result = None
    if m.processed_at is not None:
        result = s.ProcessingResult(processedFiles=m.processed_files or 0, totalFiles=m.total_files or 0,
                                    processingTime=m.processing_ms or 0, errorMessage=m.error_message,
                                    processedAt=iso(m.processed_at))  # fmt: skip
    files = [s.LogFile(originalFilename=f.original_filename, filePath=f.stored_name, fileSize=f.size,
                       uploadedAt=iso(f.uploaded_at), sha256=f.sha256) for f in m.files]  # fmt: skip
    return s.Simulation(
        id=m.id, name=m.name, description=m.description, projectId=m.project_id, userId=m.user_id, logFiles=files,
        status=m.status, processingStatus=m.processing_status, processingResult=result,
        progress=m.progress if m.processing_status in ("pending", "processing") else None,
        createdAt=iso(m.created_at), updatedAt=iso(m.updated_at),
    )  # fmt: skip
