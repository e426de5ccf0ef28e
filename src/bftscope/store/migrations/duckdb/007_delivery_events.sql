-- The two events each delivery paired (families/cometbft/analytics/derive.py): the send (wire: the p2p_send; logical: the
-- sender's first msg_internal of that message) and the receive (the p2p_recv or first msg_received), by
-- events.id. Every receive is paired at most once, so recv_event is unique in a run: /events ties each
-- received delivery to its receive event by it (api/eventpage.py). NULL in rows derived before this
-- migration; derived version 3 rebuilds them.
ALTER TABLE deliveries ADD COLUMN send_event BIGINT;
ALTER TABLE deliveries ADD COLUMN recv_event BIGINT;
