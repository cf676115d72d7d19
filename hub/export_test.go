package hub

// PendingWakes is the number of wakes the hub holds, for tests.
func PendingWakes(h *Hub) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.wakes)
}
