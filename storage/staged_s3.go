package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// An S3 staged object is a multipart upload started on its key (so that
// Publish only has to complete it), with at least one part (the only part
// may be empty). The upload carries the stage as metadata, which the
// published object keeps. S3 lists no upload's metadata, and MinIO lists
// uploads of one exact key only, so each upload is also recorded in a
// marker object ".NAME.stage-STAGE" beside the key (hidden from List),
// written exclusively as soon as the upload starts; DiscardStages finds
// stages through their markers.

// s3Marker is the content of a marker object.
type s3Marker struct {
	Key      string `json:"key"`
	Stage    string `json:"stage"`
	UploadID string `json:"upload_id"`
}

// maxMarkerSize bounds what is read of an object that looks like a marker.
const maxMarkerSize = 64 << 10

func (d *s3Driver) newStagedWriter(ctx context.Context, key, stage string) (stagedDriverWriter, error) {
	return &s3StagedWriter{s3Writer: &s3Writer{ctx: ctx, d: d, key: key, stage: stage}}, nil
}

// putMarker records a staged writer's new upload in its marker, which must
// not exist yet: a second writer of one key and stage fails here.
func (w *s3Writer) putMarker() error {
	body, err := json.Marshal(s3Marker{Key: w.key, Stage: w.stage, UploadID: w.uploadID})
	if err != nil {
		return err
	}
	w.marker = true
	err = w.d.create(w.ctx, stageKey(w.key, w.stage), body)
	if errors.Is(err, fs.ErrExist) {
		w.marker = false // another writer's
	}
	return err
}

// s3StagedWriter uploads parts as s3Writer does, but its commit only
// uploads the last part (or an empty one) and waits for the parts sent,
// leaving the upload open.
type s3StagedWriter struct {
	*s3Writer
	size int64
}

func (w *s3StagedWriter) Write(p []byte) (int, error) {
	n, err := w.s3Writer.Write(p)
	w.size += int64(n)
	return n, err
}

func (w *s3StagedWriter) commit() error {
	if w.buf.size > 0 || len(w.sent) == 0 {
		if err := w.send(); err != nil {
			return err
		}
	}
	return w.wait()
}

// abort stops the uploads, then aborts the upload and removes the marker,
// on a context that outlives the writer's, bounded by abortTimeout.
func (w *s3StagedWriter) abort() error {
	w.stop()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), abortTimeout)
	defer cancel()
	var errs []error
	if w.uploadID != "" {
		errs = append(errs, w.d.abortUpload(ctx, w.key, w.uploadID))
	}
	if w.marker {
		errs = append(errs, w.d.delete(ctx, stageKey(w.key, w.stage)))
	}
	return errors.Join(errs...)
}

func (w *s3StagedWriter) staged() Staged {
	s := Staged{Key: w.key, Stage: w.stage, Size: w.size, UploadID: w.uploadID}
	for _, p := range w.parts {
		s.Parts = append(s.Parts, StagedPart{
			Number: aws.ToInt32(p.PartNumber),
			ETag:   aws.ToString(p.ETag),
			CRC32:  aws.ToString(p.ChecksumCRC32),
		})
	}
	return s
}

// abortUpload aborts a multipart upload; one that no longer exists
// (completed or aborted) is not an error.
func (d *s3Driver) abortUpload(ctx context.Context, key, uploadID string) error {
	_, err := d.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket:   aws.String(d.bucket),
		Key:      aws.String(d.prefix + key),
		UploadId: aws.String(uploadID),
	}, d.opts)
	if err != nil {
		err = d.fail("AbortMultipartUpload", key, err)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("aborting multipart upload %s: %w", uploadID, err)
	}
	return nil
}

func (d *s3Driver) publish(ctx context.Context, s Staged) error {
	mk := stageKey(s.Key, s.Stage)
	if s.UploadID == "" || len(s.Parts) == 0 {
		return &objectError{op: "publish", url: d.url(mk), err: errors.New("the description names no multipart upload")}
	}
	if err := d.checkParts(ctx, s); err != nil {
		return err
	}
	parts := make([]types.CompletedPart, len(s.Parts))
	for i, p := range s.Parts {
		parts[i] = types.CompletedPart{PartNumber: aws.Int32(p.Number), ETag: aws.String(p.ETag)}
		if p.CRC32 != "" {
			parts[i].ChecksumCRC32 = aws.String(p.CRC32)
		}
	}
	_, err := d.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(d.bucket),
		Key:             aws.String(d.prefix + s.Key),
		UploadId:        aws.String(s.UploadID),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}, d.opts)
	if err != nil {
		err = d.fail("CompleteMultipartUpload", s.Key, err)
		// A retry after an answer was lost finds the upload completed.
		if !errors.Is(err, fs.ErrNotExist) || !d.publishedBy(ctx, s) {
			return err
		}
	}
	// The marker has served; one left behind is harmless (DiscardStages
	// removes it), so a failure here does not fail the publication.
	d.delete(ctx, mk)
	return nil
}

// checkParts checks that s's upload still has s's parts, with their
// ETags, and that they hold s.Size bytes.
func (d *s3Driver) checkParts(ctx context.Context, s Staged) error {
	mk := stageKey(s.Key, s.Stage)
	uploaded := map[int32]types.Part{}
	p := s3.NewListPartsPaginator(d.client, &s3.ListPartsInput{
		Bucket:   aws.String(d.bucket),
		Key:      aws.String(d.prefix + s.Key),
		UploadId: aws.String(s.UploadID),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx, d.opts)
		if err != nil {
			err = d.fail("ListParts", s.Key, err)
			if errors.Is(err, fs.ErrNotExist) && !errors.Is(err, errNoBucket) {
				return &objectError{op: "publish", url: d.url(mk), kind: fs.ErrNotExist, err: err}
			}
			return err
		}
		for _, part := range page.Parts {
			uploaded[aws.ToInt32(part.PartNumber)] = part
		}
	}
	var size int64
	for _, want := range s.Parts {
		got, ok := uploaded[want.Number]
		if !ok || strings.Trim(aws.ToString(got.ETag), `"`) != strings.Trim(want.ETag, `"`) {
			return &objectError{op: "publish", url: d.url(mk),
				err: fmt.Errorf("upload %s has no part %d with ETag %s", s.UploadID, want.Number, want.ETag)}
		}
		size += aws.ToInt64(got.Size)
	}
	if size != s.Size {
		return &objectError{op: "publish", url: d.url(mk),
			err: fmt.Errorf("staged parts hold %d bytes, the description says %d", size, s.Size)}
	}
	return nil
}

// publishedBy reports whether the object at s.Key is s, published: it was
// written by s's stage and has its size.
func (d *s3Driver) publishedBy(ctx context.Context, s Staged) bool {
	out, err := d.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: aws.String(d.bucket),
		Key:    aws.String(d.prefix + s.Key),
	}, d.opts)
	return err == nil && out.Metadata[stageMetaKey] == s.Stage && aws.ToInt64(out.ContentLength) == s.Size
}

func (d *s3Driver) discard(ctx context.Context, s Staged) error {
	if s.UploadID != "" {
		if err := d.abortUpload(ctx, s.Key, s.UploadID); err != nil {
			return err
		}
	}
	return d.delete(ctx, stageKey(s.Key, s.Stage))
}

func (d *s3Driver) discardStages(ctx context.Context, prefix string, keep func(key, stage string) bool) (int, error) {
	markers, err := d.listMarkers(ctx, prefix)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range markers {
		if keep(m.Key, m.Stage) {
			continue
		}
		mk := stageKey(m.Key, m.Stage)
		got, err := d.readMarker(ctx, mk)
		switch {
		case errors.Is(err, fs.ErrNotExist) && !errors.Is(err, errNoBucket):
			continue // removed meanwhile
		case err != nil:
			return n, err
		case got.Key != m.Key || got.Stage != m.Stage:
			continue // named like a marker, but not one: not ours to delete
		}
		if err := d.abortUpload(ctx, m.Key, got.UploadID); err != nil {
			return n, err
		}
		if err := d.delete(ctx, mk); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// listMarkers lists the objects named like markers of keys starting with
// prefix; their UploadIDs are not read.
func (d *s3Driver) listMarkers(ctx context.Context, prefix string) ([]s3Marker, error) {
	dir := prefix[:strings.LastIndexByte(prefix, '/')+1]
	p := s3.NewListObjectsV2Paginator(d.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(d.bucket),
		Prefix: aws.String(d.prefix + dir),
	})
	var out []s3Marker
	for p.HasMorePages() {
		page, err := p.NextPage(ctx, d.opts)
		if err != nil {
			return nil, d.fail("ListObjectsV2", prefix, err)
		}
		for _, o := range page.Contents {
			key, stage, ok := parseStageKey(strings.TrimPrefix(aws.ToString(o.Key), d.prefix))
			if ok && strings.HasPrefix(key, prefix) && aws.ToInt64(o.Size) <= maxMarkerSize {
				out = append(out, s3Marker{Key: key, Stage: stage})
			}
		}
	}
	return out, nil
}

// readMarker reads the marker object at key mk. An object that is not a
// marker reads as the zero s3Marker.
func (d *s3Driver) readMarker(ctx context.Context, mk string) (s3Marker, error) {
	out, err := d.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(d.bucket),
		Key:    aws.String(d.prefix + mk),
	}, d.opts)
	if err != nil {
		return s3Marker{}, d.fail("GetObject", mk, err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(io.LimitReader(out.Body, maxMarkerSize+1))
	if err != nil {
		return s3Marker{}, d.fail("GetObject", mk, err)
	}
	var m s3Marker
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if dec.Decode(&m) != nil || m.UploadID == "" {
		return s3Marker{}, nil
	}
	return m, nil
}

// abortUploads aborts the multipart uploads open on each key, found with
// ListMultipartUploads of the exact key (MinIO lists no wider prefix).
func (d *s3Driver) abortUploads(ctx context.Context, keys []string) (int, error) {
	n := 0
	for _, key := range keys {
		in := &s3.ListMultipartUploadsInput{Bucket: aws.String(d.bucket), Prefix: aws.String(d.prefix + key)}
		for {
			out, err := d.client.ListMultipartUploads(ctx, in, d.opts)
			if err != nil {
				return n, d.fail("ListMultipartUploads", key, err)
			}
			for _, u := range out.Uploads {
				if aws.ToString(u.Key) != d.prefix+key {
					continue
				}
				if err := d.abortUpload(ctx, key, aws.ToString(u.UploadId)); err != nil {
					return n, err
				}
				n++
			}
			if !aws.ToBool(out.IsTruncated) {
				break
			}
			in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
		}
	}
	return n, nil
}
