package replication

import (
	"testing"
	"time"
)

// TestNotifierWakesWaitersTakenBeforeTheSignal: a signal closes the channel
// every earlier wait returned, and a wait after it gets a fresh one.
func TestNotifierWakesWaitersTakenBeforeTheSignal(t *testing.T) {
	var n notifier
	n.signal() // nobody waits: nothing to wake, and nothing is remembered
	a, b := n.wait(), n.wait()
	select {
	case <-a:
		t.Fatal("woken before any signal")
	default:
	}
	n.signal()
	for _, ch := range []<-chan struct{}{a, b} {
		select {
		case <-ch:
		case <-time.After(time.Second):
			t.Fatal("a waiter was not woken")
		}
	}
	select {
	case <-n.wait():
		t.Fatal("a wait after the signal is already woken")
	default:
	}
}
