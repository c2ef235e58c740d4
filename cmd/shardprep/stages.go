package main

import (
	"log/slog"

	"github.com/shardprep/shardprep/features"
)

// specOf is the spec a model carries (a model of a spec with stages
// does), else the built-in one.
func specOf(model *features.Model) *features.Spec {
	if model != nil && model.Spec() != nil {
		return model.Spec()
	}
	return defaultSpec()
}

// logStagePlan logs a spec's stages with their fit passes.
func logStagePlan(log *slog.Logger, spec *features.Spec, model *features.Model) {
	if !spec.HasStages() {
		return
	}
	passes := spec.FitPasses()
	if model != nil {
		passes = 0
	}
	log.Info("stages planned", "stages", spec.StagePlan(), "fit_passes", passes)
}
