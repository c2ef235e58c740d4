// Package storage is shardprep's object storage: one concrete Bucket type
// over local folders, memory and S3, and the credential sources (S3 Access
// Grants, and a grants file for MinIO) that S3 buckets use.
//
// A Bucket is a flat key space rooted at a prefix, opened with OpenLocal,
// NewMemory or OpenS3. Keys are slash-separated and relative to the root
// ("train/part-00000"); List is recursive and sorted by key.
//
// A written object becomes visible only when its writer's Close returns nil;
// a writer whose context is cancelled before Close leaves nothing behind
// (local: a hidden temporary file renamed into place; S3: a single PutObject
// or a multipart upload that is completed on Close and aborted otherwise).
//
// Staged writes let one process write an object and another decide whether
// it appears: NewStagedWriter's data is durable after Close but visible at
// its key only once Publish is called with its Staged description (JSON;
// locally a hidden ".NAME.stage-STAGE" file renamed into place, on S3 a
// multipart upload on the key that Publish completes). Discard and
// DiscardStages remove stages that will not be published; a discarded or
// already published stage cannot be published (fs.ErrNotExist). Create
// writes an object only if its key is free, else fails with fs.ErrExist.
//
// Reads are byte ranges (Bucket.NewRangeReader), streamed, never whole
// objects in memory. An ETag from List or Stat pins a read to that version
// of the object: a replaced object is an error wrapping ErrChanged, never a
// mix of two versions.
//
// S3 overlaps its I/O with the caller's work. A reader streams its range
// with one ranged GET (another after a dropped connection), and a
// goroutine of its own reads the body ahead of the caller: up to 256 KiB
// at first, so that a reader that needs only a few bytes (the end of a
// line past a split) costs little, the window doubling as the caller reads
// on, up to 4 MiB. A writer uploads each full part in
// the background while it fills the next, at most 4 parts of a Bucket's
// writers at once; a write waits for a free slot, so the memory of a
// Bucket's writers is bounded by their number plus 4, in parts. The first
// part that fails stops the others and fails the write, which aborts the
// upload; so does a cancellation, once the parts in flight have stopped.
//
// Errors name the object's URL and the operation, on one line. A missing
// object is reported as an error wrapping fs.ErrNotExist, a denied request
// as one wrapping fs.ErrPermission. S3 throttling, 5xx errors and dropped
// connections are retried with backoff, a bounded number of times; access
// denied, missing buckets or keys and failed preconditions are not.
//
// A Router opens Buckets by their root (s3:// through a caller-supplied
// function that makes the S3 client, local folders itself, and mounted
// Buckets such as an in-memory sample) and routes reads of object URLs to
// them: it is the Source a job reads its inputs through. Router.Expand
// turns input arguments (a local file or folder, s3://bucket/key or
// prefix, a mounted root) into the list of input objects, in argument then
// key order, leaving out hidden keys (a path element starting with "_" or
// "."), the job's output, and the folders a caller's rule names as earlier
// outputs (storage does not know shardprep's output layout). Root gives
// the root form of a folder argument.
//
// ParseLocation parses command-line storage arguments (s3://bucket/key,
// local paths, mem://name/key); NewS3Client builds a client for AWS or
// MinIO.
//
// S3Config holds the settings of shardprep's S3 flags (endpoint, region,
// default or grant credentials, part size, retries); Check checks them
// with messages that name the flags. NewS3Opener turns a checked S3Config
// and the run's environment (an injected lookup function, so that the AWS
// region and keys come from the run, not only from the process) into the
// function a Router opens s3:// roots with: one client per prefix, carrying
// grant credentials scoped to it when grants are asked for. Size is a byte
// count as the size flags take and print it.
//
// GrantSource hands out credentials scoped to one prefix, from S3 Access
// Grants or from a grants file (checked strictly: unknown fields, and a key
// given twice in one grant in any letter case, are refused). Each grant's
// credentials are held in an aws.CredentialsCache that refreshes them a
// margin ahead of their expiration.
package storage
