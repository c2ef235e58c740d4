package container_test

import (
	"fmt"
	"os"

	"github.com/shardprep/shardprep/container"
)

func ExampleLoad() {
	// In a processing container the root is "/"; here, the second instance
	// of a two-instance job.
	job, err := container.Load(os.DirFS("testdata/two-hosts/algo-2"), os.Getenv)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(job.JobName, job.CurrentHost, "of", job.Hosts, "coordinator", job.Coordinator, job.IsCoordinator)
	in, _ := job.Input("code")
	fmt.Println(in.Name, in.LocalPath, in.S3URI)
	// Output:
	// shardprep-20260102-030405 algo-2 of [algo-1 algo-2] coordinator algo-1 false
	// code /opt/ml/processing/input/code s3://abalone-data/code/settings.json
}

func ExampleTranslateArgs() {
	args, err := container.TranslateArgs([]string{
		"--account_id", "123456789012",
		"--s3_input_bucket", "abalone-data", "--s3_input_key_prefix", "input/abalone",
		"--s3_output_bucket=abalone-data", "--s3_output_key_prefix=output/",
		"--workers", "4",
	})
	fmt.Println(args, err)
	// Output:
	// [--account-id 123456789012 --input s3://abalone-data/input/abalone/ --output s3://abalone-data/output/ --workers 4] <nil>
}

func ExampleFailureMessage() {
	fmt.Printf("%q\n", container.FailureMessage("abalone.csv line 7:\ncolumn rings: \"\" is not a number\n"))
	// Output:
	// "abalone.csv line 7: column rings: \"\" is not a number"
}
