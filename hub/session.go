package hub

import "github.com/google/uuid"

// Renewer is a realtime connection whose credential can be replaced while
// it stays open (a WebSocket's token, renewed by refreshSession): the
// transport opens a session for it, and the rules renew it by the
// session's id, plain data that travels with the connection's caller.
type Renewer interface {
	// Renew replaces the connection's credential with c, as the rules
	// checked it. It must not block.
	Renew(c any)
}

// OpenSession registers r and returns its session id, unique across
// nodes (a topic name can carry it). CloseSession forgets it.
func (h *Hub) OpenSession(r Renewer) string {
	id := uuid.NewString()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sessions == nil {
		h.sessions = map[string]Renewer{}
	}
	h.sessions[id] = r
	return id
}

// CloseSession forgets the session id, whose connection ended.
func (h *Hub) CloseSession(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.sessions, id)
}

// Renew hands credential c to the connection of session id, and reports
// whether this node holds it.
func (h *Hub) Renew(id string, c any) bool {
	h.mu.Lock()
	r := h.sessions[id]
	h.mu.Unlock()
	if r == nil {
		return false
	}
	r.Renew(c)
	return true
}
