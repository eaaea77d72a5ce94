//go:build !linux

package bench

import "errors"

// defaultClient is the client of a Config that names none: the epoll client
// exists on Linux only.
const defaultClient = ClientGoroutine

var errNoEpoll = errors.New("bench: the epoll client needs Linux")

// wsPoller is the epoll client's poll loops (ws_epoll_linux.go).
type wsPoller struct{}

func newWSPoller(int) (*wsPoller, error) { return nil, errNoEpoll }

func (*wsPoller) close() {}

func (*wsPoller) adopt(s *wsSession) (Session, error) {
	_ = s.nc.Close()
	return nil, errNoEpoll
}
