package main

import (
	"strings"
	"testing"
)

func TestAuthNoneListensOnLoopbackOnly(t *testing.T) {
	for _, tc := range []struct {
		addr  string
		force bool
		ok    bool
	}{
		{"127.0.0.1:8080", false, true},
		{"[::1]:8080", false, true},
		{"localhost:8080", false, true},
		{"0.0.0.0:8080", false, false},
		{":8080", false, false},
		{"10.0.0.5:8080", false, false},
		{"0.0.0.0:8080", true, true},
	} {
		s := security{Auth: "none", AllowRemoteNone: tc.force, MaxBodyBytes: 1 << 20, MaxPromptBytes: 1, PromptBurst: 1, CommandBurst: 1, MaxSessions: 1, MaxWorkspaces: 1}
		err := s.validate(tc.addr, false)
		if (err == nil) != tc.ok {
			t.Errorf("auth none on %s (forced %v): %v", tc.addr, tc.force, err)
		}
		if err != nil && !strings.Contains(err.Error(), "TANDEM_AUTH=jwt") {
			t.Errorf("the refusal does not say what to do: %v", err)
		}
	}
	s := security{Auth: "jwt", MaxBodyBytes: 1 << 20, MaxPromptBytes: 1, PromptBurst: 1, CommandBurst: 1, MaxSessions: 1, MaxWorkspaces: 1}
	if err := s.validate("0.0.0.0:8080", false); err == nil {
		t.Error("jwt without a secret or keys was accepted")
	}
	s.JWTSecret = "x"
	if err := s.validate("0.0.0.0:8080", false); err != nil {
		t.Errorf("jwt with a secret on any address: %v", err)
	}
}
