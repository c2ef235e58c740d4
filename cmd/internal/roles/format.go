package roles

import (
	"fmt"

	"github.com/shardprep/shardprep/cmd/internal/cli"
	"github.com/shardprep/shardprep/features"
)

// applyOutputFormat sets the output format of spec: --output-format, or
// else the spec's own, which must be one.
func (cfg *Job) applyOutputFormat(spec *features.Spec) error {
	if cfg.Format != "" {
		if _, err := features.ParseOutputFormat(cfg.Format); err != nil {
			return cli.Usagef("--output-format: %v", err)
		}
		spec.Output.Format = cfg.Format
		return nil
	}
	if _, err := features.ParseOutputFormat(spec.Output.Format); err != nil {
		return fmt.Errorf("--spec %s: output.format: %w", cfg.Spec, err)
	}
	return nil
}
