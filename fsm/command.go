package fsm

import (
	"fmt"

	"github.com/opencontainers/go-digest"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// NewCommand returns the Command that carries op, one of the command
// payloads of fsm.proto (a *fsmpb.LinkBlob, a *fsmpb.CreateUser, ...), as
// its Op. The proposer (cluster.Node.Apply) stamps its request ID and
// time. It panics if op is no command payload, a programming error that
// TestNewCommandCoversEveryCommand rules out for every payload there is.
func NewCommand(op proto.Message) *fsmpb.Command {
	fd, ok := commandFields[op.ProtoReflect().Descriptor().FullName()]
	if !ok {
		panic(fmt.Sprintf("fsm.NewCommand: %T is not a command", op))
	}
	cmd := &fsmpb.Command{}
	cmd.ProtoReflect().Set(fd, protoreflect.ValueOfMessage(op.ProtoReflect()))
	return cmd
}

// commandFields maps each command payload's message name to its field of
// the Command.op oneof.
var commandFields = func() map[protoreflect.FullName]protoreflect.FieldDescriptor {
	fields := (&fsmpb.Command{}).ProtoReflect().Descriptor().Oneofs().ByName("op").Fields()
	m := make(map[protoreflect.FullName]protoreflect.FieldDescriptor, fields.Len())
	for i := range fields.Len() {
		fd := fields.Get(i)
		m[fd.Message().FullName()] = fd
	}
	return m
}()

// LinkBlobOp links stored blob d of size bytes into repo, recording the
// holders, if any, in the same write.
func LinkBlobOp(repo string, d digest.Digest, size int64, holders ...string) *fsmpb.LinkBlob {
	op := &fsmpb.LinkBlob{Repository: repo, Digest: d.String(), Size: size}
	if len(holders) > 0 {
		op.HolderNodeId, op.MoreHolderNodeIds = holders[0], holders[1:]
	}
	return op
}
