package sagemaker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// logGroup is where SageMaker Processing sends its containers'
// stdout and stderr, one stream per instance: JOB/algo-1-TIMESTAMP, ...
const logGroup = "/aws/sagemaker/ProcessingJobs"

// logFollower follows the CloudWatch log streams of a processing job for
// "submit --wait", printing each new line as "algo-1: LINE".
type logFollower struct {
	client *jsonClient // of CloudWatch Logs
	job    string
	out    io.Writer
	next   map[string]string // per stream, the token after the last event printed
	off    bool              // reading failed: status only
}

func newLogFollower(client *jsonClient, job string, out io.Writer) *logFollower {
	return &logFollower{client: client, job: job, out: out, next: map[string]string{}}
}

// follow prints the lines that the job's streams gained since the last
// call. A group or stream that is not there yet is no error; any other
// error (a caller without logs:DescribeLogStreams or logs:GetLogEvents)
// turns the follower off, with one line that says so.
func (l *logFollower) follow(ctx context.Context) {
	if l == nil || l.off {
		return
	}
	streams, err := l.streams(ctx)
	for _, s := range streams {
		if err == nil {
			err = l.stream(ctx, s)
		}
	}
	if err != nil && ctx.Err() == nil {
		l.off = true
		var ae *apiError
		if errors.As(err, &ae) {
			err = fmt.Errorf("%s: %s", ae.code, ae.message)
		}
		fmt.Fprintf(l.out, "logs: not shown (%v); the job's status only\n", err)
	}
}

// streams lists the job's log streams, page by page.
func (l *logFollower) streams(ctx context.Context) ([]string, error) {
	var names []string
	token := ""
	for {
		var page struct {
			LogStreams []struct {
				LogStreamName string `json:"logStreamName"`
			} `json:"logStreams"`
			NextToken string `json:"nextToken"`
		}
		err := l.client.call(ctx, "DescribeLogStreams", struct {
			LogGroupName        string `json:"logGroupName"`
			LogStreamNamePrefix string `json:"logStreamNamePrefix"`
			NextToken           string `json:"nextToken,omitempty"`
		}{logGroup, l.job + "/", token}, &page)
		if isCode(err, "ResourceNotFoundException") {
			return names, nil
		}
		if err != nil {
			return nil, err
		}
		for _, s := range page.LogStreams {
			names = append(names, s.LogStreamName)
		}
		if page.NextToken == "" || page.NextToken == token {
			return names, nil
		}
		token = page.NextToken
	}
}

// stream prints the new events of one stream, a bounded number of pages
// at a time.
func (l *logFollower) stream(ctx context.Context, name string) error {
	host := strings.TrimPrefix(name, l.job+"/") // algo-1-1767312000
	if i := strings.LastIndexByte(host, '-'); i > 0 && strings.Trim(host[i+1:], "0123456789") == "" {
		host = host[:i]
	}
	for range 20 {
		prev := l.next[name]
		var out struct {
			Events []struct {
				Message string `json:"message"`
			} `json:"events"`
			NextForwardToken string `json:"nextForwardToken"`
		}
		err := l.client.call(ctx, "GetLogEvents", struct {
			LogGroupName  string `json:"logGroupName"`
			LogStreamName string `json:"logStreamName"`
			StartFromHead bool   `json:"startFromHead"`
			NextToken     string `json:"nextToken,omitempty"`
		}{logGroup, name, true, prev}, &out)
		if err != nil {
			return err
		}
		for _, e := range out.Events {
			fmt.Fprintf(l.out, "%s: %s\n", host, strings.TrimRight(e.Message, "\r\n"))
		}
		if out.NextForwardToken != "" {
			l.next[name] = out.NextForwardToken
		}
		if len(out.Events) == 0 || out.NextForwardToken == prev {
			return nil
		}
	}
	return nil
}
