package storage

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"
)

// uploadsInFlight is how many parts one Bucket's writers upload at once,
// together: a writer that fills a part while that many are on the wire
// waits for one of them. It bounds the memory of the parts being sent to
// uploadsInFlight × PartSize.
const uploadsInFlight = 4

// partBuf is the data of one part (or of a small object) as chunks, all
// full but the last, and its CRC32, which the upload sends for S3 to check.
type partBuf struct {
	chunks [][]byte
	size   int64
	crc    uint32
}

// write appends p, taking chunks from pool as needed.
func (b *partBuf) write(pool *chunkPool, p []byte) {
	for len(p) > 0 {
		n := len(b.chunks)
		if n == 0 || len(b.chunks[n-1]) == chunkSize {
			b.chunks = append(b.chunks, pool.get())
			n++
		}
		c := b.chunks[n-1]
		k := min(len(p), chunkSize-len(c))
		b.chunks[n-1] = append(c, p[:k]...)
		b.crc = crc32.Update(b.crc, crc32.IEEETable, p[:k])
		b.size += int64(k)
		p = p[k:]
	}
}

// release gives the chunks back to pool and empties b.
func (b *partBuf) release(pool *chunkPool) {
	pool.put(b.chunks)
	*b = partBuf{}
}

// reader returns a reader of b's data. It seeks, so that the SDK can
// checksum the body and rewind it for a retry.
func (b *partBuf) reader() *chunkReader { return &chunkReader{chunks: b.chunks, size: b.size} }

// chunkReader reads the chunks of a partBuf as one stream.
type chunkReader struct {
	chunks [][]byte
	size   int64
	off    int64
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	c := r.chunks[r.off/chunkSize][r.off%chunkSize:]
	n := copy(p, c)
	r.off += int64(n)
	return n, nil
}

func (r *chunkReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.size
	}
	if offset < 0 {
		return 0, errors.New("storage: seek before the start of a part")
	}
	r.off = offset
	return offset, nil
}

func (d *s3Driver) newWriter(ctx context.Context, key string) (driverWriter, error) {
	return &s3Writer{ctx: ctx, d: d, key: key}, nil
}

// s3Writer buffers a part. The first part to fill starts a multipart
// upload; an object that never fills a part is sent on commit with
// PutObject. A full part is uploaded in the background while the next one
// fills, up to uploadsInFlight parts of the Bucket at once; the first
// failed upload stops the others and fails the next Write or the commit.
// Its requests run on the writer's ctx, so a cancellation interrupts them;
// abort waits for the uploads to stop, then discards the upload.
type s3Writer struct {
	ctx      context.Context
	d        *s3Driver
	key      string
	buf      partBuf
	uploadID string
	// The parts sent: uploads runs their requests on upCtx, which a
	// failed part or stopUploads cancels; each fills in its sent entry.
	uploads     *errgroup.Group
	upCtx       context.Context
	stopUploads context.CancelFunc
	sent        []*types.CompletedPart
	parts       []types.CompletedPart // sent, once all have succeeded
	// stage is set for a staged writer (staged_s3.go): the upload records
	// it, and a marker object names the upload.
	stage  string
	marker bool // the marker may exist (it was written by this writer)
}

func (w *s3Writer) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		// Send a full part only once more data arrives, so that an object
		// of exactly one part goes out as a single PutObject.
		if w.buf.size == w.d.partSize {
			if err := w.send(); err != nil {
				return n, err
			}
		}
		k := min(int64(len(p)), w.d.partSize-w.buf.size)
		w.buf.write(chunks, p[:k])
		p = p[k:]
		n += int(k)
	}
	return n, nil
}

// send starts uploading the buffer as the next part, once the Bucket has
// a free upload slot, and leaves an empty buffer. It starts the multipart
// upload first if needed, and reports the failure of an earlier part.
func (w *s3Writer) send() error {
	if w.uploadID == "" {
		if err := w.start(); err != nil {
			return err
		}
		ctx, stop := context.WithCancel(w.ctx)
		w.uploads, w.upCtx = errgroup.WithContext(ctx)
		w.stopUploads = stop
	}
	if len(w.sent) == maxParts {
		return &objectError{op: "UploadPart", url: w.d.url(w.key),
			err: fmt.Errorf("object exceeds %d parts of %d bytes; use a larger part size", maxParts, w.d.partSize)}
	}
	select {
	case w.d.slots <- struct{}{}:
	case <-w.upCtx.Done():
		return w.uploadsFailed()
	}
	if w.upCtx.Err() != nil {
		<-w.d.slots
		return w.uploadsFailed()
	}
	num := int32(len(w.sent) + 1)
	part := &types.CompletedPart{PartNumber: aws.Int32(num)}
	w.sent = append(w.sent, part)
	buf := w.buf
	w.buf = partBuf{}
	w.uploads.Go(func() error {
		defer func() {
			buf.release(chunks)
			<-w.d.slots
		}()
		return w.uploadPart(w.upCtx, &buf, part)
	})
	return nil
}

// uploadsFailed is the error once upCtx has ended: the first failed
// part's, or the writer's cancellation.
func (w *s3Writer) uploadsFailed() error {
	if err := w.uploads.Wait(); err != nil {
		return err
	}
	return w.d.fail("UploadPart", w.key, w.upCtx.Err())
}

// uploadPart uploads buf as part and records its ETag and checksum there.
func (w *s3Writer) uploadPart(ctx context.Context, buf *partBuf, part *types.CompletedPart) error {
	out, err := w.d.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket:            aws.String(w.d.bucket),
		Key:               aws.String(w.d.prefix + w.key),
		UploadId:          aws.String(w.uploadID),
		PartNumber:        part.PartNumber,
		Body:              buf.reader(),
		ContentLength:     aws.Int64(buf.size),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
		ChecksumCRC32:     aws.String(crc32Base64(buf.crc)),
	}, w.d.opts, withChecksumOnly)
	if err != nil {
		return w.d.fail("UploadPart", w.key, err)
	}
	part.ETag, part.ChecksumCRC32 = out.ETag, out.ChecksumCRC32
	return nil
}

// wait waits for the parts sent and, if all succeeded, lists them in
// order in parts.
func (w *s3Writer) wait() error {
	if w.uploads == nil {
		return nil
	}
	err := w.uploads.Wait()
	w.stopUploads()
	if err != nil {
		return err
	}
	w.parts = w.parts[:0]
	for _, p := range w.sent {
		w.parts = append(w.parts, *p)
	}
	return nil
}

// stop drops the buffer, and stops the uploads of the parts sent and
// waits for them, so that no part arrives after an abort.
func (w *s3Writer) stop() {
	w.buf.release(chunks)
	if w.uploads != nil {
		w.stopUploads()
		w.uploads.Wait()
	}
}

// start begins the multipart upload. A staged writer's upload carries its
// stage as metadata, and a marker object records it once started.
func (w *s3Writer) start() error {
	if err := w.ctx.Err(); err != nil {
		return w.d.fail("CreateMultipartUpload", w.key, err)
	}
	in := &s3.CreateMultipartUploadInput{
		Bucket:            aws.String(w.d.bucket),
		Key:               aws.String(w.d.prefix + w.key),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	}
	if w.stage != "" {
		in.Metadata = map[string]string{stageMetaKey: w.stage}
	}
	// Not on w.ctx: a cancellation racing the request could drop an
	// answer whose upload then exists unknown to us, and so is never
	// aborted. Once the ID is known, a cancellation aborts it.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), abortTimeout)
	defer cancel()
	out, err := w.d.client.CreateMultipartUpload(cctx, in, w.d.opts)
	if err != nil {
		return w.d.fail("CreateMultipartUpload", w.key, err)
	}
	w.uploadID = aws.ToString(out.UploadId)
	if w.stage != "" {
		return w.putMarker()
	}
	return nil
}

// abort stops the uploads and drops the buffer, then aborts the multipart
// upload, if one was started, on a context that outlives the writer's (it
// may be the cancellation being handled), bounded by abortTimeout.
func (w *s3Writer) abort() error {
	w.stop()
	if w.uploadID == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), abortTimeout)
	defer cancel()
	_, err := w.d.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket:   aws.String(w.d.bucket),
		Key:      aws.String(w.d.prefix + w.key),
		UploadId: aws.String(w.uploadID),
	}, w.d.opts)
	if err != nil {
		return fmt.Errorf("aborting multipart upload %s: %w", w.uploadID, w.d.fail("AbortMultipartUpload", w.key, err))
	}
	w.uploadID = ""
	return nil
}

func (w *s3Writer) commit() error {
	if w.uploadID == "" {
		_, err := w.d.client.PutObject(w.ctx, &s3.PutObjectInput{
			Bucket:            aws.String(w.d.bucket),
			Key:               aws.String(w.d.prefix + w.key),
			Body:              w.buf.reader(),
			ContentLength:     aws.Int64(w.buf.size),
			ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
			ChecksumCRC32:     aws.String(crc32Base64(w.buf.crc)),
		}, w.d.opts, withChecksumOnly)
		w.buf.release(chunks)
		if err != nil {
			return w.d.fail("PutObject", w.key, err)
		}
		return nil
	}
	if w.buf.size > 0 {
		if err := w.send(); err != nil {
			return err
		}
	}
	if err := w.wait(); err != nil {
		return err
	}
	_, err := w.d.client.CompleteMultipartUpload(w.ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(w.d.bucket),
		Key:             aws.String(w.d.prefix + w.key),
		UploadId:        aws.String(w.uploadID),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: w.parts},
	}, w.d.opts)
	if err != nil {
		return w.d.fail("CompleteMultipartUpload", w.key, err)
	}
	return nil
}
