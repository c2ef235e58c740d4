package container

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzFailureMessage(f *testing.F) {
	for _, s := range []string{"", "plain", "a\r\nb\rc\nd", strings.Repeat("é", 700), "\xff\xfe", strings.Repeat("x", 1030)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, reason string) {
		m := FailureMessage(reason)
		if len(m) > MaxFailureBytes || !utf8.ValidString(m) || strings.ContainsAny(m, "\r\n") {
			t.Fatalf("FailureMessage(%q) = %q: too long, invalid UTF-8 or multi-line", reason, m)
		}
		if FailureMessage(m) != m {
			t.Fatalf("FailureMessage is not idempotent on %q", m)
		}
	})
}

func FuzzTranslateArgs(f *testing.F) {
	f.Add("--account_id 123456789012 --s3_input_bucket b --s3_input_key_prefix p --workers 4")
	f.Add("--s3_output_bucket=o --s3_output_key_prefix=/x/ -- --s3_input_bucket z")
	f.Add("--input s3://b/ -v --seed=7")
	f.Fuzz(func(t *testing.T, line string) {
		args := strings.Fields(line)
		out, err := TranslateArgs(args)
		if err != nil {
			return
		}
		// Arguments that are not seed flags or their values survive in order.
		var kept []string
		for i := 0; i < len(args); i++ {
			if args[i] == "--" {
				kept = append(kept, args[i:]...)
				break
			}
			name, _, hasValue := splitFlag(args[i])
			switch name {
			case seedAccountID, seedInputBucket, seedInputPrefix, seedOutputBucket, seedOutputPrefix:
				if !hasValue {
					i++
				}
				continue
			}
			kept = append(kept, args[i])
		}
		if len(out) < len(kept) || !slices.Equal(out[len(out)-len(kept):], kept) {
			t.Fatalf("TranslateArgs(%q) = %q lost or reordered %q", args, out, kept)
		}
	})
}

func FuzzLoad(f *testing.F) {
	f.Add(`{"current_host":"algo-1","hosts":["algo-1"]}`, minimalJob)
	f.Add(`{"current_host":"algo-2","hosts":["algo-1","algo-2"]}`, `{"ProcessingJobName":"j","ProcessingInputs":[{"InputName":"a","S3Input":{"S3Uri":"s3://b/","LocalPath":"/opt/ml/processing/a"}}]}`)
	f.Add(`[]`, `null`)
	f.Fuzz(func(t *testing.T, resource, job string) {
		j, err := Load(fakeTree(resource, job), nil)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "container: ") {
				t.Fatalf("error without the package prefix: %v", err)
			}
			return
		}
		if j.Coordinator != j.Hosts[0] || j.IsCoordinator != (j.CurrentHost == j.Hosts[0]) || !slices.Contains(j.Hosts, j.CurrentHost) {
			t.Fatalf("inconsistent hosts: %+v", j)
		}
		for _, c := range append(slices.Clone(j.Inputs), j.Outputs...) {
			if c.LocalPath != "" && !strings.HasPrefix(c.LocalPath, "/opt/ml/processing/") {
				t.Fatalf("channel %+v outside /opt/ml/processing", c)
			}
		}
	})
}
