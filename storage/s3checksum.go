package storage

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
	"strings"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Every body shardprep uploads (PutObject, UploadPart) carries its CRC32
// in the x-amz-checksum-crc32 header, computed by the writer as the bytes
// arrive, and S3 (or MinIO) rejects a body that does not match it. Given
// that checksum, the SDK neither reads the body to compute one, nor, over
// https, wraps it in aws-chunked encoding to send the checksum as a
// trailer. Over plain http the SDK would also sign the body's SHA-256 (a
// second pass over every byte, and the server computes it again to check
// the signature); with the CRC32 header there, unsignedPayload sends
// UNSIGNED-PAYLOAD instead, as the SDK itself does over https. The
// request's headers, the checksum among them, stay signed.

// unsignedPayloadID names unsignedPayload in the middleware stack.
const unsignedPayloadID = "shardprep:UnsignedPayloadWithChecksum"

// crc32Base64 is the value of an x-amz-checksum-crc32 header: the
// big-endian CRC32 (IEEE) in base64.
func crc32Base64(crc uint32) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], crc)
	return base64.StdEncoding.EncodeToString(b[:])
}

// crc32Of is the x-amz-checksum-crc32 value of data.
func crc32Of(data []byte) string { return crc32Base64(crc32.ChecksumIEEE(data)) }

// unsignedPayload sets the SigV4 payload hash of a plain-http request that
// carries a flexible checksum header to UNSIGNED-PAYLOAD, before the SDK
// would hash the body. Any other request is left as the SDK signs it.
type unsignedPayload struct{}

func (unsignedPayload) ID() string { return unsignedPayloadID }

func (unsignedPayload) HandleFinalize(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (
	middleware.FinalizeOutput, middleware.Metadata, error,
) {
	if req, ok := in.Request.(*smithyhttp.Request); ok && !req.IsHTTPS() && v4.GetPayloadHash(ctx) == "" && hasChecksumHeader(req) {
		ctx = v4.SetPayloadHash(ctx, "UNSIGNED-PAYLOAD")
	}
	return next.HandleFinalize(ctx, in)
}

// hasChecksumHeader reports whether req carries an x-amz-checksum-*
// header with a value.
func hasChecksumHeader(req *smithyhttp.Request) bool {
	for h, v := range req.Header {
		if len(h) > len("x-amz-checksum-") && strings.EqualFold(h[:len("x-amz-checksum-")], "x-amz-checksum-") &&
			len(v) > 0 && v[0] != "" {
			return true
		}
	}
	return false
}

// withChecksumOnly is the per-request option of uploads whose input sets
// a CRC32: their payload goes unsigned (see unsignedPayload). It goes in
// right before the SDK's payload hashing, so that it sees the checksum
// header the input serialized.
func withChecksumOnly(o *s3.Options) {
	o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
		return stack.Finalize.Insert(unsignedPayload{}, "ComputePayloadHash", middleware.Before)
	})
}
