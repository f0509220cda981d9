package consultest

import (
	"encoding/hex"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/hashicorp/consul/api"
	"github.com/miekg/dns"
)

// dnsServer is the double's DNS interface, UDP and TCP on one port.
type dnsServer struct {
	addr    string
	servers []*dns.Server
	wg      sync.WaitGroup
}

// startDNS listens on 127.0.0.1, UDP and TCP on the same free port.
func startDNS(a *Agent) (*dnsServer, error) {
	var pc net.PacketConn
	var ln net.Listener
	var err error
	for range 20 { // the TCP port may be taken; try another
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("DNS: %w", err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		_ = pc.Close() // retrying with another port
	}
	if err != nil {
		return nil, fmt.Errorf("DNS: no free port for both UDP and TCP: %w", err)
	}
	d := &dnsServer{addr: pc.LocalAddr().String()}
	h := dns.HandlerFunc(a.serveDNS)
	for _, s := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		d.servers = append(d.servers, s)
		errc := make(chan error, 1)
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			errc <- s.ActivateAndServe()
		}()
		select {
		case <-started:
		case err := <-errc:
			d.close()
			return nil, fmt.Errorf("DNS: %w", err)
		}
	}
	return d, nil
}

func (d *dnsServer) close() {
	for _, s := range d.servers {
		_ = s.Shutdown() // the test is over; a failure to stop shows as a leak
	}
	d.wg.Wait()
}

// serveDNS answers as Consul's DNS interface does, for the names the
// double knows (see the package doc).
func (a *Agent) serveDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m) // the client may be gone; nothing to do
		return
	}
	q := req.Question[0]
	a.answer(m, q)
	_ = w.WriteMsg(m) // the client may be gone; nothing to do
}

func (a *Agent) answer(m *dns.Msg, q dns.Question) {
	name := strings.ToLower(q.Name)
	labels := dns.SplitDomainName(name)
	n := len(labels)
	if n < 3 || labels[n-1] != "consul" {
		m.Rcode = dns.RcodeRefused
		return
	}
	labels = labels[:n-1]
	// Drop our datacenter: NAME.service.DC and NAME.service are the same.
	if len(labels) >= 3 && labels[len(labels)-1] == strings.ToLower(a.opts.Datacenter) &&
		(labels[len(labels)-2] == "service" || labels[len(labels)-2] == "addr") {
		labels = labels[:len(labels)-1]
	}
	switch labels[len(labels)-1] {
	case "addr":
		if len(labels) != 2 {
			m.Rcode = dns.RcodeNameError
			return
		}
		ip, err := hex.DecodeString(labels[0])
		if err != nil || len(ip) != 4 && len(ip) != 16 {
			m.Rcode = dns.RcodeNameError
			return
		}
		if rr := addrRR(q.Name, net.IP(ip), q.Qtype); rr != nil {
			m.Answer = append(m.Answer, rr)
		}
	case "service":
		var service, tag string
		switch rest := labels[:len(labels)-1]; {
		case len(rest) == 1:
			service = rest[0]
		case len(rest) == 2 && strings.HasPrefix(rest[0], "_") && strings.HasPrefix(rest[1], "_"):
			service, tag = rest[0][1:], rest[1][1:]
			if tag == "tcp" {
				tag = ""
			}
		case len(rest) == 2:
			tag, service = rest[0], rest[1]
		default:
			m.Rcode = dns.RcodeNameError
			return
		}
		a.answerService(m, q, service, tag)
	default:
		m.Rcode = dns.RcodeNameError
	}
}

func (a *Agent) answerService(m *dns.Msg, q dns.Question, service, tag string) {
	var tags []string
	if tag != "" {
		tags = []string{tag}
	}
	a.mu.Lock()
	instances := a.instancesLocked(service, tags)
	a.mu.Unlock()
	found := false
	for _, in := range instances {
		switch st := in.checks.AggregatedStatus(); {
		case st == api.HealthCritical, st == api.HealthMaint:
			continue
		case st == api.HealthWarning && a.opts.OnlyPassing:
			continue
		}
		ip := net.ParseIP(in.svc.Address)
		if ip == nil {
			ip = net.IPv4(127, 0, 0, 1) // the node's address
		}
		found = true
		target := hex.EncodeToString(ipBytes(ip)) + ".addr." + strings.ToLower(a.opts.Datacenter) + ".consul."
		switch q.Qtype {
		case dns.TypeSRV:
			m.Answer = append(m.Answer, &dns.SRV{
				Hdr:      dns.RR_Header{Name: q.Name, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 0},
				Priority: 1, Weight: 1, Port: uint16(in.svc.Port), Target: target,
			})
			if rr := addrRR(target, ip, addrType(ip)); rr != nil {
				m.Extra = append(m.Extra, rr)
			}
		case dns.TypeA, dns.TypeAAAA, dns.TypeANY:
			if rr := addrRR(q.Name, ip, q.Qtype); rr != nil {
				m.Answer = append(m.Answer, rr)
			}
		}
	}
	if !found {
		m.Rcode = dns.RcodeNameError
	}
}

// ipBytes is ip in 4 bytes if it is IPv4, else 16.
func ipBytes(ip net.IP) net.IP {
	if v4 := ip.To4(); v4 != nil {
		return v4
	}
	return ip
}

func addrType(ip net.IP) uint16 {
	if ip.To4() != nil {
		return dns.TypeA
	}
	return dns.TypeAAAA
}

// addrRR is an A or AAAA record for ip if qtype asks for its family.
func addrRR(name string, ip net.IP, qtype uint16) dns.RR {
	hdr := dns.RR_Header{Name: name, Class: dns.ClassINET, Ttl: 0}
	v4 := ip.To4()
	switch {
	case v4 != nil && (qtype == dns.TypeA || qtype == dns.TypeANY):
		hdr.Rrtype = dns.TypeA
		return &dns.A{Hdr: hdr, A: v4}
	case v4 == nil && (qtype == dns.TypeAAAA || qtype == dns.TypeANY):
		hdr.Rrtype = dns.TypeAAAA
		return &dns.AAAA{Hdr: hdr, AAAA: ip}
	}
	return nil
}
