package container

import (
	"fmt"
	"strings"
)

// Seed-script flags, as the notebook that launched the PySpark job passes
// them (argparse style, underscores).
const (
	seedAccountID    = "account_id"
	seedInputBucket  = "s3_input_bucket"
	seedInputPrefix  = "s3_input_key_prefix"
	seedOutputBucket = "s3_output_bucket"
	seedOutputPrefix = "s3_output_key_prefix"
)

// TranslateArgs maps the seed script's arguments to shardprep flags, so a
// processing job defined for the PySpark script runs shardprep unchanged:
//
//	--account_id A                                  -> --account-id A
//	--s3_input_bucket B  --s3_input_key_prefix P    -> --input s3://B/P/
//	--s3_output_bucket B --s3_output_key_prefix P   -> --output s3://B/P/
//
// Both "--name value" and "--name=value" are accepted (one leading dash
// too). Prefixes lose leading and trailing slashes; an absent or empty
// prefix names the bucket root (s3://B/). The translated flags come first,
// in the order above, then every other argument unchanged and in order.
// Arguments after a "--" terminator are passed through untranslated.
//
// Errors: a seed flag without a value or given twice, a key prefix without
// its bucket, a bucket name containing "/", an account id that is not 12
// digits, and a seed flag together with the shardprep flag it maps to.
func TranslateArgs(args []string) ([]string, error) {
	seed := map[string]string{}
	native := map[string]bool{}
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		name, value, hasValue := splitFlag(a)
		switch name {
		case seedAccountID, seedInputBucket, seedInputPrefix, seedOutputBucket, seedOutputPrefix:
			if !hasValue {
				if i+1 >= len(args) {
					return nil, fmt.Errorf("container: argument %s needs a value", a)
				}
				i++
				value = args[i]
			}
			if _, dup := seed[name]; dup {
				return nil, fmt.Errorf("container: argument --%s is given twice", name)
			}
			seed[name] = value
			continue
		case "account-id", "input", "output":
			native[name] = true
		}
		rest = append(rest, a)
	}

	var out []string
	if id, ok := seed[seedAccountID]; ok {
		if native["account-id"] {
			return nil, fmt.Errorf("container: both --%s and --account-id are given", seedAccountID)
		}
		if !isAccountID(id) {
			return nil, fmt.Errorf("container: --%s %q is not a 12-digit AWS account id", seedAccountID, id)
		}
		out = append(out, "--account-id", id)
	}
	for _, g := range []struct{ bucket, prefix, flag string }{
		{seedInputBucket, seedInputPrefix, "input"},
		{seedOutputBucket, seedOutputPrefix, "output"},
	} {
		bucket, hasBucket := seed[g.bucket]
		prefix, hasPrefix := seed[g.prefix]
		if !hasBucket {
			if hasPrefix {
				return nil, fmt.Errorf("container: --%s is given without --%s", g.prefix, g.bucket)
			}
			continue
		}
		if native[g.flag] {
			return nil, fmt.Errorf("container: both --%s and --%s are given", g.bucket, g.flag)
		}
		if bucket == "" || strings.Contains(bucket, "/") {
			return nil, fmt.Errorf("container: --%s %q is not a bucket name", g.bucket, bucket)
		}
		uri := "s3://" + bucket + "/"
		if p := strings.Trim(prefix, "/"); p != "" {
			uri += p + "/"
		}
		out = append(out, "--"+g.flag, uri)
	}
	return append(out, rest...), nil
}

// splitFlag splits "-name", "--name" or "--name=value"; name is "" for an
// argument that is not a flag.
func splitFlag(a string) (name, value string, hasValue bool) {
	if len(a) < 2 || a[0] != '-' || a == "--" {
		return "", "", false
	}
	s := strings.TrimPrefix(a[1:], "-")
	if s == "" || s[0] == '-' || s[0] == '=' {
		return "", "", false
	}
	name, value, hasValue = strings.Cut(s, "=")
	return name, value, hasValue
}

func isAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
