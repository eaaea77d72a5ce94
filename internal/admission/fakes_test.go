package admission

// The fake limiters and audit counter these tests use are in
// internal/session/sessiontest, shared with the session core's tests.

// attemptAdmit asks for admission the way transports do: Attempt, then Admit.
func attemptAdmit(c *Controller, req Request) (*Slot, Refusal) {
	c.Attempt(req.Transport)
	return c.Admit(req)
}
