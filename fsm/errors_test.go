package fsm

import (
	"errors"
	"testing"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

func TestResultError(t *testing.T) {
	if err := ResultError(success()); err != nil {
		t.Fatalf("success: %v", err)
	}
	if err := ResultError(nil); err != nil {
		t.Fatalf("no result: %v", err)
	}
	// Every code but OK maps to its sentinel, and the message follows.
	for code := range fsmpb.ResultCode_name {
		c := fsmpb.ResultCode(code)
		if c == fsmpb.ResultCode_RESULT_CODE_OK {
			continue
		}
		sentinel, ok := refusals[c]
		if !ok {
			t.Errorf("result code %v has no error", c)
			continue
		}
		err := ResultError(refused(c, "the %s", "reason"))
		if !errors.Is(err, sentinel) || err.Error() != sentinel.Error()+": the reason" {
			t.Errorf("%v: %v, want %v with the message", c, err, sentinel)
		}
	}
	if err := ResultError(&fsmpb.Result{Code: 9999, Message: "m"}); err == nil {
		t.Error("an unknown code gave no error")
	}
}
