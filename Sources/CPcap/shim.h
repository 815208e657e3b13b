// <pcap/bpf.h> (classic BPF, for pcap_compile) declares a struct bpf_insn of its own, which
// <linux/bpf.h> (libbpf's, in CLibbpf) declares otherwise: Ports, which imports both, would not
// compile. The switch compiles no pcap filter; it needs only the link types (<pcap/dlt.h>).
#define PCAP_DONT_INCLUDE_PCAP_BPF_H
#include <pcap/dlt.h>
#include <pcap/pcap.h>
