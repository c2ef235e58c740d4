//go:build !purego

#include "go_asm.h"
#include "textflag.h"

// func countSumLanes(vals []float64, hist *[2][windowBins]uint32, wkey uint64, scale float64, l *laneSums) int
//
// Per group of 8 values (Z0, as bits): keys = bits>>histShift - wkey; if
// any is not below windowBins, stop before the group. Else the keys go
// to scalar increments of hist, alternating copies; the
// lanes' least and greatest bits are Z24 and Z25; m = v·scale as int64
// (exact, below 2^63), a = m>>32 and b = m's low 32 bits add b, a and the
// low and high 32 bits of a², ab and b² to the rows of l.sums (Z16-Z23).
// KEY loads the bits of the value at off(SI) into r as its key.
#define KEY(off, r) \
	MOVQ off(SI), r; \
	SHRQ $const_histShift, r; \
	SUBQ R8, r

// COUNT4 counts the four values from off(SI) in the histogram's copies,
// alternately (BX, R12).
#define COUNT4(off) \
	KEY(off, DX); \
	KEY(off+8, R9); \
	KEY(off+16, R10); \
	KEY(off+24, R11); \
	INCL (BX)(DX*4); \
	INCL (R12)(R9*4); \
	INCL (BX)(R10*4); \
	INCL (R12)(R11*4)

TEXT ·countSumLanes(SB), NOSPLIT, $0-64
	MOVQ vals_base+0(FP), SI
	MOVQ vals_len+8(FP), CX
	MOVQ hist+24(FP), BX
	MOVQ l+48(FP), DI
	XORQ AX, AX
	SHRQ $3, CX
	JZ   none
	MOVQ BX, R12
	ADDQ $(const_windowBins*4), R12
	VBROADCASTSD scale+40(FP), Z31
	MOVQ $0xffffffff, DX
	VPBROADCASTQ DX, Z30
	MOVQ wkey+32(FP), R8
	VPBROADCASTQ R8, Z29
	MOVQ $const_windowBins, DX
	VPBROADCASTQ DX, Z28
	VMOVDQU64 (laneSums_sums+0)(DI), Z16
	VMOVDQU64 (laneSums_sums+64)(DI), Z17
	VMOVDQU64 (laneSums_sums+128)(DI), Z18
	VMOVDQU64 (laneSums_sums+192)(DI), Z19
	VMOVDQU64 (laneSums_sums+256)(DI), Z20
	VMOVDQU64 (laneSums_sums+320)(DI), Z21
	VMOVDQU64 (laneSums_sums+384)(DI), Z22
	VMOVDQU64 (laneSums_sums+448)(DI), Z23
	VMOVDQU64 laneSums_min(DI), Z24
	VMOVDQU64 laneSums_max(DI), Z25

loop:
	VMOVDQU64 (SI), Z0
	VPSRLQ    $const_histShift, Z0, Z9
	VPSUBQ    Z29, Z9, Z9
	VPCMPUQ   $5, Z28, Z9, K1 // keys >= windowBins
	KORTESTB  K1, K1
	JNZ       out
	VPMINUQ   Z0, Z24, Z24
	VPMAXUQ   Z0, Z25, Z25
	COUNT4(0)
	COUNT4(32)

	VMULPD     Z0, Z31, Z1
	VCVTTPD2QQ Z1, Z1       // m
	VPSRLQ     $32, Z1, Z2  // a
	VPANDQ     Z30, Z1, Z1  // b
	VPADDQ     Z1, Z16, Z16
	VPADDQ     Z2, Z17, Z17
	VPMULUDQ   Z2, Z2, Z3 // a²
	VPMULUDQ   Z2, Z1, Z4 // ab
	VPMULUDQ   Z1, Z1, Z5 // b²
	VPANDQ     Z30, Z3, Z6
	VPSRLQ     $32, Z3, Z3
	VPADDQ     Z6, Z18, Z18
	VPADDQ     Z3, Z19, Z19
	VPANDQ     Z30, Z4, Z7
	VPSRLQ     $32, Z4, Z4
	VPADDQ     Z7, Z20, Z20
	VPADDQ     Z4, Z21, Z21
	VPANDQ     Z30, Z5, Z8
	VPSRLQ     $32, Z5, Z5
	VPADDQ     Z8, Z22, Z22
	VPADDQ     Z5, Z23, Z23

	ADDQ $64, SI
	ADDQ $8, AX
	DECQ CX
	JNZ  loop

out:
	VMOVDQU64 Z16, (laneSums_sums+0)(DI)
	VMOVDQU64 Z17, (laneSums_sums+64)(DI)
	VMOVDQU64 Z18, (laneSums_sums+128)(DI)
	VMOVDQU64 Z19, (laneSums_sums+192)(DI)
	VMOVDQU64 Z20, (laneSums_sums+256)(DI)
	VMOVDQU64 Z21, (laneSums_sums+320)(DI)
	VMOVDQU64 Z22, (laneSums_sums+384)(DI)
	VMOVDQU64 Z23, (laneSums_sums+448)(DI)
	VMOVDQU64 Z24, laneSums_min(DI)
	VMOVDQU64 Z25, laneSums_max(DI)
	VZEROUPPER

none:
	MOVQ AX, ret+56(FP)
	RET
