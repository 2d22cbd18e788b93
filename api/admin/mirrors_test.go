package admin

import (
	"slices"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// An update changes only what it sets; the lists only with their set flag.
func TestApplyMirrorUpdate(t *testing.T) {
	old := &fsmpb.Mirror{
		Repository: "ns/nginx", Remote: "hub", Upstream: "library/nginx",
		IncludeTags: []string{"1.*"}, ExcludeTags: []string{"*-rc"}, Platforms: []string{"linux/amd64"},
		Schedule: "6h", MirrorMode: true,
	}
	str := func(s string) *string { return &s }
	yes, no := true, false
	for _, tc := range []struct {
		name  string
		op    *fsmpb.UpdateMirror
		check func(m *fsmpb.Mirror) bool
	}{
		{"nothing", &fsmpb.UpdateMirror{}, func(m *fsmpb.Mirror) bool { return m.GetSchedule() == "6h" && len(m.GetIncludeTags()) == 1 }},
		{"lists without set flag are kept", &fsmpb.UpdateMirror{IncludeTags: []string{"2.*"}}, func(m *fsmpb.Mirror) bool { return slices.Equal(m.GetIncludeTags(), []string{"1.*"}) }},
		{"include replaced", &fsmpb.UpdateMirror{SetIncludeTags: true, IncludeTags: []string{"2.*", "3.*"}}, func(m *fsmpb.Mirror) bool { return slices.Equal(m.GetIncludeTags(), []string{"2.*", "3.*"}) }},
		{"exclude cleared", &fsmpb.UpdateMirror{SetExcludeTags: true}, func(m *fsmpb.Mirror) bool { return len(m.GetExcludeTags()) == 0 }},
		{"platforms cleared", &fsmpb.UpdateMirror{SetPlatforms: true}, func(m *fsmpb.Mirror) bool { return len(m.GetPlatforms()) == 0 }},
		{"schedule to manual", &fsmpb.UpdateMirror{Schedule: str("")}, func(m *fsmpb.Mirror) bool { return m.GetSchedule() == "" }},
		{"flags", &fsmpb.UpdateMirror{MirrorMode: &no, AllowPush: &yes}, func(m *fsmpb.Mirror) bool { return !m.GetMirrorMode() && m.GetAllowPush() }},
		{"remote and upstream", &fsmpb.UpdateMirror{Remote: str("quay"), Upstream: str("x/y")}, func(m *fsmpb.Mirror) bool { return m.GetRemote() == "quay" && m.GetUpstream() == "x/y" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := applyMirrorUpdate(old, tc.op)
			if !tc.check(got) {
				t.Errorf("got %v", got)
			}
			if old.GetSchedule() != "6h" || len(old.GetExcludeTags()) != 1 {
				t.Errorf("the old record changed: %v", old)
			}
		})
	}
}

// The FSM's refusals of a mirror name the field, as invalid_argument.
func TestMirrorFieldError(t *testing.T) {
	for _, tc := range []struct {
		name  string
		m     *fsmpb.Mirror
		field string
	}{
		{"bad glob", &fsmpb.Mirror{Repository: "ns/a", Remote: "hub", Upstream: "library/a", IncludeTags: []string{"[a-z]"}}, "include_tags: "},
		{"bad exclude", &fsmpb.Mirror{Repository: "ns/a", Remote: "hub", Upstream: "library/a", ExcludeTags: []string{"a b"}}, "exclude_tags: "},
		{"bad platform", &fsmpb.Mirror{Repository: "ns/a", Remote: "hub", Upstream: "library/a", Platforms: []string{"linux"}}, "platforms: "},
		{"bad schedule", &fsmpb.Mirror{Repository: "ns/a", Remote: "hub", Upstream: "library/a", Schedule: "often"}, "schedule: "},
		{"upstream", &fsmpb.Mirror{Repository: "ns/a", Remote: "hub", Upstream: "UP"}, "upstream: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := mirrorFieldError(fsm.CheckMirror(tc.m))
			if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.HasPrefix(err.(*connect.Error).Message(), tc.field) {
				t.Errorf("got %v, want invalid_argument on %s", err, tc.field)
			}
		})
	}
}

func TestCheckJobID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{{"000000000001", true}, {"", false}, {"1", false}, {"00000000000a", false}, {"ns/nginx", false}} {
		if err := checkJobID("job_id", tc.id); (err == nil) != tc.ok {
			t.Errorf("checkJobID(%q) = %v", tc.id, err)
		}
	}
}
