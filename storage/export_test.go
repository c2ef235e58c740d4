package storage

// OutstandingChunks is how many S3 buffer chunks are handed out and not
// given back: zero once every reader and writer is closed.
func OutstandingChunks() int { return chunks.outstanding() }
