// Package storage is shardprep's object storage: one concrete Bucket type
// over local folders, memory and S3, and the credential sources (S3 Access
// Grants, and a grants file for MinIO) that S3 buckets use.
//
// A written object becomes visible only when its writer's Close returns nil;
// a writer whose context is cancelled before Close leaves nothing behind.
// A missing object is reported as an error wrapping fs.ErrNotExist.
package storage
