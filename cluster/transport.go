package cluster

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// streamLayer is a raft.StreamLayer over a TCP listener that advertises a
// configured address. raft.NewTCPTransport cannot listen on port 0 and learn
// the port, which tests and the advertise default need.
type streamLayer struct {
	net.Listener
	advertise net.Addr
}

var _ raft.StreamLayer = (*streamLayer)(nil)

func (s *streamLayer) Addr() net.Addr { return s.advertise }

func (s *streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	return d.Dial("tcp", string(addr))
}

// listen opens the Raft listener and works out the advertised address.
func listen(listenAddr, advertise string) (*streamLayer, error) {
	l, err := net.Listen("tcp", listenAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", listenAddr, err)
	}
	adv, err := advertiseAddr(l.Addr().(*net.TCPAddr), advertise)
	if err != nil {
		l.Close()
		return nil, err
	}
	return &streamLayer{Listener: l, advertise: adv}, nil
}

// advertiseAddr resolves advertise, or derives it from the listener address
// when it is empty.
func advertiseAddr(listener *net.TCPAddr, advertise string) (*net.TCPAddr, error) {
	if advertise == "" {
		addr := *listener
		if addr.IP == nil || addr.IP.IsUnspecified() {
			addr.IP = net.IPv4(127, 0, 0, 1)
		}
		return &addr, nil
	}
	addr, err := net.ResolveTCPAddr("tcp", advertise)
	if err != nil {
		return nil, fmt.Errorf("resolve advertise address %q: %w", advertise, err)
	}
	if addr.IP == nil || addr.IP.IsUnspecified() || addr.Port == 0 {
		return nil, errors.New("advertise address " + advertise + " is not reachable by peers")
	}
	return addr, nil
}
