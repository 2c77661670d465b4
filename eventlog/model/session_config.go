package model

import "encoding/json"

// Session hash fields of a session's modes, models and config options
// (SessionRecord), and of what people asked for.
const (
	SessionModes         = "modes"
	SessionModels        = "models"
	SessionConfigOptions = "configOptions"
	SessionWant          = "want"
)

// SessionConfigFields are the session hash fields UpdateSession may set.
var SessionConfigFields = []string{SessionModes, SessionModels, SessionConfigOptions, SessionWant}

// ParseSessionConfig fills r's modes, models, config options and wants
// from its session hash v.
func ParseSessionConfig(r *SessionRecord, v map[string]string) {
	for k, dst := range map[string]*json.RawMessage{SessionModes: &r.Modes, SessionModels: &r.Models, SessionConfigOptions: &r.ConfigOptions, SessionWant: &r.Want} {
		if s := v[k]; s != "" && json.Valid([]byte(s)) {
			*dst = json.RawMessage(s)
		}
	}
}
