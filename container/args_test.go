package container

import (
	"reflect"
	"strings"
	"testing"
)

func TestTranslateArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []string
		want []string
	}{
		{"seed script, space form",
			[]string{"--account_id", "123456789012", "--s3_input_bucket", "abalone-data", "--s3_input_key_prefix", "input/abalone",
				"--s3_output_bucket", "abalone-out", "--s3_output_key_prefix", "output/run-1"},
			[]string{"--account-id", "123456789012", "--input", "s3://abalone-data/input/abalone/", "--output", "s3://abalone-out/output/run-1/"}},
		{"equals form and slashes",
			[]string{"--s3_output_key_prefix=/out/", "--s3_output_bucket=b", "--s3_input_bucket=b", "--s3_input_key_prefix=in", "--account_id=000000000001"},
			[]string{"--account-id", "000000000001", "--input", "s3://b/in/", "--output", "s3://b/out/"}},
		{"bucket root",
			[]string{"--s3_input_bucket", "b", "--s3_output_bucket", "o", "--s3_output_key_prefix", "/"},
			[]string{"--input", "s3://b/", "--output", "s3://o/"}},
		{"others pass through in order",
			[]string{"--workers", "4", "--s3_input_bucket", "b", "-v", "--s3_input_key_prefix", "p", "--seed=7", "--output", "/tmp/out"},
			[]string{"--input", "s3://b/p/", "--workers", "4", "-v", "--seed=7", "--output", "/tmp/out"}},
		{"single dash",
			[]string{"-account_id", "123456789012", "-s3_input_bucket=b"},
			[]string{"--account-id", "123456789012", "--input", "s3://b/"}},
		{"nothing to translate",
			[]string{"--input", "s3://b/p/", "--credentials", "grants"},
			[]string{"--input", "s3://b/p/", "--credentials", "grants"}},
		{"after --",
			[]string{"--s3_input_bucket", "b", "--", "--s3_output_bucket", "x"},
			[]string{"--input", "s3://b/", "--", "--s3_output_bucket", "x"}},
		{"empty", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := TranslateArgs(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("TranslateArgs(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestTranslateArgsErrors(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{[]string{"--s3_input_bucket"}, "--s3_input_bucket needs a value"},
		{[]string{"--account_id"}, "needs a value"},
		{[]string{"--s3_input_bucket", "a", "--s3_input_bucket=b"}, "--s3_input_bucket is given twice"},
		{[]string{"--s3_input_key_prefix", "p"}, "--s3_input_key_prefix is given without --s3_input_bucket"},
		{[]string{"--s3_output_key_prefix", "p"}, "--s3_output_key_prefix is given without --s3_output_bucket"},
		{[]string{"--s3_input_bucket", "s3://b"}, "is not a bucket name"},
		{[]string{"--s3_output_bucket="}, "is not a bucket name"},
		{[]string{"--account_id", "12345"}, "not a 12-digit AWS account id"},
		{[]string{"--account_id", "12345678901x"}, "not a 12-digit AWS account id"},
		{[]string{"--s3_input_bucket", "b", "--input", "s3://c/"}, "both --s3_input_bucket and --input"},
		{[]string{"--output=s3://c/", "--s3_output_bucket", "b"}, "both --s3_output_bucket and --output"},
		{[]string{"--account-id", "123456789012", "--account_id", "123456789012"}, "both --account_id and --account-id"},
	} {
		got, err := TranslateArgs(tc.in)
		if err == nil {
			t.Errorf("TranslateArgs(%q) = %q, want an error", tc.in, got)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("TranslateArgs(%q) error %q, want it to contain %q", tc.in, err, tc.want)
		}
	}
}
