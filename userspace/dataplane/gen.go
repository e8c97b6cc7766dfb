package dataplane

// The XDP program (bpf/xdp_sip.c) compiled for little-endian BPF; the generated
// xdpsip_bpfel.go and xdpsip_bpfel.o are committed, so building needs no clang.
// -mcpu=v3 (kernel >= 5.1) gives 32-bit jumps and ALU32; the include path is the
// Debian/Ubuntu place of <asm/types.h> for the UAPI headers.
//go:generate go tool bpf2go -tags linux -target bpfel -type pass_reason -type drop_reason -type sip_event -type event_kind -type sip_method -type dispatch_alg -type limit_key -type limit_verdict -type limit_present -type limit_kind xdpsip ../../bpf/xdp_sip.c -- -I../../bpf -I/usr/include/x86_64-linux-gnu -O2 -mcpu=v3 -g -Wall
