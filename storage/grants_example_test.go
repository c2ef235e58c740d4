package storage_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/shardprep/shardprep/storage"
)

func ExampleGrantTarget_Location() {
	in := storage.GrantTarget{Bucket: "shardprep", Prefix: "UserA/abalone/", Permission: storage.PermRead}
	fmt.Println(in.Location())
	fmt.Println(in)
	// Output:
	// s3://shardprep/UserA/abalone/*
	// s3://shardprep/UserA/abalone/* (READ)
}

// A grants file for MinIO: the caller's own keys sign an STS AssumeRole,
// and the minted credentials, limited to the matched grant, serve an S3
// client for the prefix.
func ExampleNewGrantsFile() {
	ctx := context.Background()
	grants, err := storage.ParseGrants([]byte(`[
		{"grantee": "usera", "location": "s3://shardprep/UserA/*", "permission": "READWRITE"}
	]`))
	if err != nil {
		log.Fatal(err)
	}
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("usera", "usera-secret", "")}
	src, err := storage.NewGrantsFile(cfg, "grants.json", grants, &storage.GrantOptions{
		Endpoint: "http://127.0.0.1:9000", JobName: "abalone", Fallback: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	gc, err := src.Credentials(ctx, storage.GrantTarget{Bucket: "shardprep", Prefix: "UserA/out/", Permission: storage.PermReadWrite})
	var ng *storage.NoGrantError
	switch {
	case errors.As(err, &ng):
		log.Fatal(err) // names the access key, the location and the permission
	case err != nil:
		log.Fatal(err)
	case gc.Fallback() != nil:
		log.Printf("using the caller's own credentials: %v", gc.Fallback())
	}
	client := s3.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: gc}, func(o *s3.Options) {
		o.BaseEndpoint = aws.String("http://127.0.0.1:9000")
		o.UsePathStyle = true
	})
	_ = client
	log.Printf("%v; %d AssumeRole calls", gc, src.Calls())
}
