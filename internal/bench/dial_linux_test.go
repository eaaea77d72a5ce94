package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestDialTimingCountsSynRetransmits: a connect to a listener whose accept
// queue is full has its SYN dropped and sent again (the 1 s, 3 s … of a
// slow dial); dialNode reports the connect's duration and the retransmit.
func TestDialTimingCountsSynRetransmits(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil { // room for one connection not yet accepted
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", sa.(*unix.SockaddrInet4).Port)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var first DialTiming
	c1, _, err := dialNode(ctx, DialTarget{BaseURL: base, Timing: &first}, "ws")
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	if first.ConnectNs <= 0 || first.SynRetrans != 0 {
		t.Errorf("first connect %+v: want a duration and no retransmit", first)
	}
	// The accept queue is full: the next SYN is dropped until one is accepted.
	accepted := make(chan int, 1)
	go func() {
		time.Sleep(1500 * time.Millisecond)
		nfd, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
		if err != nil {
			nfd = -1
		}
		accepted <- nfd
	}()
	defer func() {
		if nfd := <-accepted; nfd >= 0 {
			_ = unix.Close(nfd)
		}
	}()
	var second DialTiming
	c2, _, err := dialNode(ctx, DialTarget{BaseURL: base, Timing: &second}, "ws")
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if second.SynRetrans < 1 {
		t.Errorf("second connect %+v: want at least one SYN retransmit", second)
	}
}
