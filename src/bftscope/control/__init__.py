"""Control plane: users, projects, simulations, tokens, uploads, jobs."""
