package cluster

import (
	"sync"

	"github.com/hashicorp/memberlist"
)

// Notices are small messages a node tells every other node by gossip, best
// effort: memberlist piggybacks them on its own messages and sends each a
// few times, to random members, so a notice reaches every live member
// within about a second, or never (across a partition, or to a node that
// joins later). They suit state that can absorb a lost or repeated
// message, such as counters that only grow. A lone node without gossip
// sends none.

// NoticeTopic says what a notice is about; its receiver per topic is set
// with OnNotice.
type NoticeTopic byte

// Notice topics.
const (
	// NoticeLoginFailure: a failed login, for the login throttle of
	// every node.
	NoticeLoginFailure NoticeTopic = 1
)

// Limits of notices.
const (
	// maxNoticeBytes bounds one notice, well within a gossip packet.
	maxNoticeBytes = 512
	// maxQueuedNotices bounds the notices waiting to be sent; the oldest
	// go first.
	maxQueuedNotices = 4096
	// noticeRetransmitMult scales how often each notice is sent (times
	// log(members+1)).
	noticeRetransmitMult = 4
)

// notices is the gossip side of notices: the queue memberlist takes
// broadcasts from, and the receivers of incoming ones.
type notices struct {
	queue *memberlist.TransmitLimitedQueue

	mu        sync.RWMutex
	receivers map[NoticeTopic]func([]byte)
}

func newNotices(numNodes func() int) *notices {
	return &notices{
		queue:     &memberlist.TransmitLimitedQueue{NumNodes: numNodes, RetransmitMult: noticeRetransmitMult},
		receivers: map[NoticeTopic]func([]byte){},
	}
}

// send queues msg on topic. A queued notice of the same topic and name
// that has not gone out yet is replaced: name what a newer notice makes
// obsolete.
func (n *notices) send(topic NoticeTopic, name string, msg []byte) bool {
	if len(msg)+1 > maxNoticeBytes {
		return false
	}
	n.queue.QueueBroadcast(noticeBroadcast{
		name: string(rune(topic)) + name,
		msg:  append([]byte{byte(topic)}, msg...),
	})
	n.queue.Prune(maxQueuedNotices)
	return true
}

// receive hands an incoming notice to its topic's receiver; notices of a
// topic without one are dropped.
func (n *notices) receive(b []byte) {
	if len(b) < 1 || len(b) > maxNoticeBytes {
		return
	}
	n.mu.RLock()
	fn := n.receivers[NoticeTopic(b[0])]
	n.mu.RUnlock()
	if fn != nil {
		fn(b[1:])
	}
}

func (n *notices) setReceiver(topic NoticeTopic, fn func([]byte)) {
	n.mu.Lock()
	n.receivers[topic] = fn
	n.mu.Unlock()
}

// noticeBroadcast is a memberlist.NamedBroadcast.
type noticeBroadcast struct {
	name string
	msg  []byte
}

func (b noticeBroadcast) Invalidates(other memberlist.Broadcast) bool {
	o, ok := other.(noticeBroadcast)
	return ok && o.name == b.name
}
func (b noticeBroadcast) Name() string    { return b.name }
func (b noticeBroadcast) Message() []byte { return b.msg }
func (b noticeBroadcast) Finished()       {}

// Notify tells every other live node msg (at most a few hundred bytes) on
// topic, best effort; see NoticeTopic. A newer notice of the same topic
// and name replaces one not sent yet. It reports false for a message too
// large to send, and sends nothing on a lone node without gossip.
func (n *Node) Notify(topic NoticeTopic, name string, msg []byte) bool {
	if n.gossip == nil {
		return true
	}
	return n.gossip.notices.send(topic, name, msg)
}

// OnNotice sets the receiver of topic's notices from other nodes. It is
// called on memberlist's goroutine: keep it quick, and copy msg to keep it.
func (n *Node) OnNotice(topic NoticeTopic, receive func(msg []byte)) {
	if n.gossip != nil {
		n.gossip.notices.setReceiver(topic, receive)
	}
}
