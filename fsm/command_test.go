package fsm

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// TestNewCommandCoversEveryCommand: NewCommand wraps every payload of the
// Command.op oneof, and a command built with it decodes to the same op.
func TestNewCommandCoversEveryCommand(t *testing.T) {
	fields := (&fsmpb.Command{}).ProtoReflect().Descriptor().Oneofs().ByName("op").Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		mt, err := protoregistryType(fd.Message())
		if err != nil {
			t.Fatal(err)
		}
		op := mt.New().Interface()
		cmd := NewCommand(op)
		if got := cmd.ProtoReflect().WhichOneof(fd.ContainingOneof()); got != fd {
			t.Errorf("NewCommand(%s) sets %v", fd.Message().FullName(), got)
		}
		if !proto.Equal(cmd.ProtoReflect().Get(fd).Message().Interface(), op) {
			t.Errorf("NewCommand(%s) changed the payload", fd.Message().FullName())
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("NewCommand of a record that is no command did not panic")
		}
	}()
	NewCommand(&fsmpb.User{})
}

// protoregistryType returns the Go type of message md, which the fsmpb
// package registers.
func protoregistryType(md protoreflect.MessageDescriptor) (protoreflect.MessageType, error) {
	return protoregistry.GlobalTypes.FindMessageByName(md.FullName())
}
