package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReservedSplitNamesRefused: a spec whose split is named like one of
// shardprep's folders (_rejected, _shardprep) or a hidden one is refused
// before anything is written, naming the split; rejected rows can never
// overwrite a split's parts.
func TestReservedSplitNamesRefused(t *testing.T) {
	spec, err := os.ReadFile("sample/abalone.spec.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"_rejected", "_shardprep", "_tmp", ".hidden"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			bad := strings.Replace(string(spec), `"validation"`, `"`+name+`"`, 1)
			if bad == string(spec) {
				t.Fatal("the sample spec has no validation split to rename")
			}
			specFile := filepath.Join(dir, "spec.json")
			if err := os.WriteFile(specFile, []byte(bad), 0o644); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "out")
			_, stderr, code := runBin(t, baseEnv(), "run", "--spec", specFile, "--output", out, "--seed", "1",
				"--on-invalid", "skip", "--quiet")
			if code == 0 {
				t.Fatalf("a split named %q was accepted", name)
			}
			if !strings.Contains(stderr, `"`+name+`"`) || !strings.Contains(stderr, "may not start with") {
				t.Errorf("the error does not name the split and the rule:\n%s", stderr)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("a refused spec left %s behind", out)
			}
		})
	}
}

// TestGrantsFileDuplicateKeysRefused: a grants file that gives a key twice
// in one grant, in any letter case, is refused with its line, before any
// request is made, rather than one of the two being kept silently.
func TestGrantsFileDuplicateKeysRefused(t *testing.T) {
	dir := t.TempDir()
	grants := filepath.Join(dir, "grants.json")
	body := "[\n" +
		`  {"grantee": "usera", "location": "s3://shardprep/UserA/*", "permission": "READWRITE"},` + "\n" +
		`  {"grantee": "usera", "Grantee": "userb", "location": "s3://shardprep/Product/*", "permission": "READ"}` + "\n" +
		"]\n"
	if err := os.WriteFile(grants, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	env := baseEnv("AWS_ACCESS_KEY_ID=usera", "AWS_SECRET_ACCESS_KEY=secretsecret", "AWS_REGION=us-east-1")
	_, stderr, code := runBin(t, env, "run", "--input", "s3://shardprep/UserA/abalone.csv",
		"--output", "s3://shardprep/UserA/out/", "--s3-endpoint", "http://127.0.0.1:1",
		"--credentials", "grants", "--grants-file", grants, "--quiet")
	if code == 0 {
		t.Fatal("a grants file with a duplicate key was accepted")
	}
	for _, want := range []string{grants, "line 3", `"Grantee"`, `"grantee"`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the error does not say %s:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "127.0.0.1:1") {
		t.Errorf("a request was made before the grants file was checked:\n%s", stderr)
	}
}
