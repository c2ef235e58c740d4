package roles

import (
	"log/slog"

	"github.com/shardprep/shardprep/features"
)

// logStagePlan logs a spec's stages with the fit pass of each that learns
// from the data, and the number of fit passes (none with a model given).
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
