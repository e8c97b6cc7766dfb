package dataplane

import (
	"errors"
	"fmt"
	"net"

	"github.com/cilium/ebpf/link"
)

// Mode is how the program is attached to an interface.
type Mode string

// Attach modes: auto tries native (driver) XDP first and falls back to
// generic (skb) XDP; native and generic insist on one.
const (
	ModeAuto    Mode = "auto"
	ModeNative  Mode = "native"
	ModeGeneric Mode = "generic"
)

// Attach attaches the program to the interface ifname on ingress and returns
// the link (a bpf_link: closing it detaches) and the mode used.
func (d *Dataplane) Attach(ifname string, mode Mode) (link.Link, Mode, error) {
	switch mode {
	case "", ModeAuto, ModeNative, ModeGeneric:
	default:
		return nil, "", fmt.Errorf("attach xdp to %s: unknown mode %q (want auto, native or generic)", ifname, mode)
	}
	iface, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, "", fmt.Errorf("attach xdp to %s: %w", ifname, err)
	}
	try := func(m Mode) (link.Link, error) {
		flags := link.XDPDriverMode
		if m == ModeGeneric {
			flags = link.XDPGenericMode
		}
		return link.AttachXDP(link.XDPOptions{Program: d.objs.XdpSip, Interface: iface.Index, Flags: flags})
	}
	if mode == ModeGeneric {
		l, err := try(ModeGeneric)
		if err != nil {
			return nil, "", fmt.Errorf("attach xdp (generic) to %s: %w", ifname, err)
		}
		return l, ModeGeneric, nil
	}
	l, nerr := try(ModeNative)
	if nerr == nil {
		return l, ModeNative, nil
	}
	if mode == ModeNative {
		return nil, "", fmt.Errorf("attach xdp (native) to %s: %w", ifname, nerr)
	}
	l, gerr := try(ModeGeneric)
	if gerr != nil {
		return nil, "", fmt.Errorf("attach xdp to %s: native: %w", ifname, errors.Join(nerr, fmt.Errorf("generic: %w", gerr)))
	}
	return l, ModeGeneric, nil
}
