// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Network family: per-process TCP retransmits, resets sent and received,
 * failed connects, receive-queue overflows, and the remote endpoints they
 * went to. Most of these happen in softirq or a timer (a retransmit timer,
 * a RST arriving), where `current` is whoever was interrupted: the probe
 * keeps socket -> owner, learned where the owner itself runs, and charges
 * each event to the socket's owner.
 *
 * Where the owner is learned (process context only):
 *  - inet_sock_set_state CLOSE -> SYN_SENT: connect() sets the state itself;
 *  - tcp_rcv_space_adjust with the socket lock owned: called from recvmsg,
 *    or from release_sock processing the backlog, in the lock owner;
 *  - the resolver (net_resolve, an iter/task_file walk the daemon runs when
 *    net_pending has entries): the process that has the socket open.
 * Accepted sockets are born in softirq; they get their owner at their first
 * read. UDP sockets, and accepted sockets that something happens to before
 * any read, get theirs from the resolver: the event waits in net_pending
 * (abi.h: fp_net_pending) and is charged to the owner the walk finds. No hook
 * on every sendmsg/recvmsg (sock:sock_send_length/sock_recv_length, v6.3+):
 * they fire for every socket of every family, ~40 ns a call even on AF_UNIX
 * (bench/RESULTS.md 1b). Entries go at -> CLOSE; the map is an LRU, so
 * sockets that never close through a state change (UDP) age out.
 *
 * Drops with a reason (skb:kfree_skb) are charged to the owner of the skb's
 * socket, and counted per (process, reason) in net_drop_reasons.
 */
#include "common.bpf.h"
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define FP_AF_INET 2
#define FP_AF_INET6 10
#define FP_IPPROTO_TCP 6
#define FP_IPPROTO_UDP 17
#define FP_TCP_SYN_SENT 2
#define FP_TCP_SYN_RECV 3
#define FP_TCP_CLOSE 7

struct fp_net_owner {
	__u32 tgid;
	__u32 segs_seen;        /* tcp_sock.segs_out already charged to the owner */
	__u64 start_ns;         /* the owner's identity with tgid */
};

/* struct sock * -> owner. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FP_DEFAULT_NET_OWNERS);
	__type(key, __u64);
	__type(value, struct fp_net_owner);
} net_owners SEC(".maps") __weak;

/* (process, remote endpoint) -> counts, created when something goes wrong there. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FP_DEFAULT_NET_ENDPOINTS);
	__type(key, struct fp_net_ep_key);
	__type(value, struct fp_net_ep);
} net_endpoints SEC(".maps") __weak;

/* struct sock * -> what happened to it before its owner was known (abi.h). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FP_DEFAULT_NET_PENDING);
	__type(key, __u64);
	__type(value, struct fp_net_pending);
} net_pending SEC(".maps") __weak;

/* Events kept in net_pending, ever: the daemon runs the resolver when it moves. */
__u64 fp_net_pending_events = 0;
/* What the resolver's walks did (read by the daemon around a walk). */
struct fp_net_resolve_stats fp_net_resolve_stats = {};

/* (process, enum skb_drop_reason) -> packets dropped, created at the first drop. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FP_DEFAULT_NET_DROP_REASONS);
	__type(key, struct fp_net_drop_key);
	__type(value, __u64);
} net_drop_reasons SEC(".maps") __weak;

static __always_inline __u16 fp_sk_family(struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_family);
}

static __always_inline bool fp_sk_tcp(struct sock *sk)
{
	__u16 fam = fp_sk_family(sk);

	return (fam == FP_AF_INET || fam == FP_AF_INET6) && BPF_CORE_READ(sk, sk_protocol) == FP_IPPROTO_TCP;
}

static __always_inline __u32 fp_sk_segs_out(struct sock *sk)
{
	return BPF_CORE_READ((struct tcp_sock *)sk, segs_out);
}

/* The owner's slot, or NULL (and the entry dropped) when the owner is gone or its pid reused. */
static __always_inline struct fp_proc *fp_owner_proc(__u64 key, struct fp_net_owner *o)
{
	struct fp_proc *p = fp_proc_get(o->tgid, NULL, false);

	if (p && p->start_ns == o->start_ns)
		return p;
	bpf_map_delete_elem(&net_owners, &key);
	return NULL;
}

static __always_inline void fp_ep_key(struct sock *sk, struct fp_net_owner *o, struct fp_net_ep_key *k)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->tgid = o->tgid;
	k->start_ns = o->start_ns;
	k->family = fp_sk_family(sk);
	k->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (k->family == FP_AF_INET6) {
		BPF_CORE_READ_INTO(&k->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	} else {
		__be32 v4 = BPF_CORE_READ(sk, __sk_common.skc_daddr);

		__builtin_memcpy(k->daddr, &v4, sizeof(v4));
	}
}

/* The endpoint entry of the socket's peer; created when `create`. */
static __always_inline struct fp_net_ep *fp_ep_of(struct sock *sk, struct fp_net_owner *o, bool create)
{
	struct fp_net_ep_key k;
	struct fp_net_ep *e;
	long err;

	fp_ep_key(sk, o, &k);
	e = bpf_map_lookup_elem(&net_endpoints, &k);
	if (e || !create)
		return e;
	struct fp_net_ep init = {};

	init.first_ns = bpf_ktime_get_ns();
	err = bpf_map_update_elem(&net_endpoints, &k, &init, BPF_NOEXIST);
	if (err && err != -17 /* EEXIST: another CPU created it */) {
		fp_drop(FP_DROP_NET_ENDPOINTS_FULL);
		return NULL;
	}
	return bpf_map_lookup_elem(&net_endpoints, &k);
}

/*
 * Charges the TCP segments the socket sent since the last charge to its
 * owner (and to its endpoint entry, when there is one). segs_out counts
 * retransmitted segments too, so retransmits / segs_out is the share.
 */
static __always_inline void fp_charge_segs(struct sock *sk, struct fp_net_owner *o, struct fp_proc *p,
					   struct fp_net_ep *e)
{
	__u32 now = fp_sk_segs_out(sk);
	__u32 seen = o->segs_seen;
	__u32 d = now - seen;

	if (d == 0 || d > (1u << 30)) /* nothing new, or a value from before the owner changed */
		return;
	if (__sync_val_compare_and_swap(&o->segs_seen, seen, now) != seen)
		return; /* another CPU charged it meanwhile */
	__sync_fetch_and_add(&p->net_segs_out, d);
	if (!e)
		e = fp_ep_of(sk, o, false);
	if (e)
		__sync_fetch_and_add(&e->segs_out, d);
}

/*
 * The calling process owns `sk` (process context): record it, or charge the
 * segments sent since the last look when it is already known.
 */
static __always_inline void fp_learn_owner(struct sock *sk)
{
	__u64 key = (__u64)sk;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct fp_net_owner *o;
	struct fp_proc *p;

	if (!sk || tgid == 0)
		return;
	o = bpf_map_lookup_elem(&net_owners, &key);
	if (o && o->tgid == tgid) {
		if (fp_sk_tcp(sk)) {
			p = fp_owner_proc(key, o);
			if (p)
				fp_charge_segs(sk, o, p, NULL);
		}
		return;
	}
	p = fp_proc_get(tgid, (void *)bpf_get_current_task(), true);
	if (!p)
		return;
	struct fp_net_owner v = {};

	v.tgid = tgid;
	v.start_ns = p->start_ns;
	/* a new owner starts from what the socket sent so far; a first one is charged all of it */
	v.segs_seen = o && fp_sk_tcp(sk) ? fp_sk_segs_out(sk) : 0;
	if (bpf_map_update_elem(&net_owners, &key, &v, BPF_ANY))
		fp_drop(FP_DROP_NET_OWNERS_FULL);
}

/* The owner of `sk` and its slot, or NULL when the probe does not know it (yet). */
static __always_inline struct fp_net_owner *fp_owner_of(struct sock *sk, struct fp_proc **p)
{
	__u64 key = (__u64)sk;
	struct fp_net_owner *o = sk ? bpf_map_lookup_elem(&net_owners, &key) : NULL;

	if (!o)
		return NULL;
	*p = fp_owner_proc(key, o);
	return *p ? o : NULL;
}

/* The inode number of the socket's file (struct socket_alloc: the socket, then its inode); 0: none yet. */
static __always_inline __u64 fp_sk_ino(struct sock *sk)
{
	struct socket *sock = BPF_CORE_READ(sk, sk_socket);
	struct inode *inode;

	if (!sock)
		return 0;
	inode = (struct inode *)((char *)sock + bpf_core_field_offset(struct socket_alloc, vfs_inode) -
				 bpf_core_field_offset(struct socket_alloc, socket));
	return BPF_CORE_READ(inode, i_ino);
}

enum fp_pend_kind { FP_PEND_RETRANSMIT, FP_PEND_RESET_RECEIVED, FP_PEND_RCVQ_OVERFLOW, FP_PEND_DROP };

/*
 * Something happened to a socket whose owner is not known: kept in
 * net_pending for the resolver. Only a full map loses it (counted unowned;
 * a drop is not: drops on sockets nobody owns are not the counter's business,
 * as below).
 */
static __always_inline void fp_pend(struct sock *sk, enum fp_pend_kind kind, __u32 n, __u32 reason)
{
	__u64 key = (__u64)sk;
	struct fp_net_pending *pe;
	long err;

	if (!sk)
		return;
	pe = bpf_map_lookup_elem(&net_pending, &key);
	if (!pe) {
		struct fp_net_pending init = {};

		init.first_ns = bpf_ktime_get_ns();
		init.drop_reason = reason;
		init.ino = fp_sk_ino(sk);
		err = bpf_map_update_elem(&net_pending, &key, &init, BPF_NOEXIST);
		if (err && err != -17 /* EEXIST: another CPU made it */) {
			if (kind != FP_PEND_DROP)
				fp_drop(FP_DROP_NET_UNOWNED);
			return;
		}
		pe = bpf_map_lookup_elem(&net_pending, &key);
		if (!pe)
			return;
	}
	switch (kind) {
	case FP_PEND_RETRANSMIT:
		__sync_fetch_and_add(&pe->retransmits, n);
		break;
	case FP_PEND_RESET_RECEIVED:
		__sync_fetch_and_add(&pe->resets_received, n);
		break;
	case FP_PEND_RCVQ_OVERFLOW:
		__sync_fetch_and_add(&pe->rcvq_overflows, n);
		break;
	case FP_PEND_DROP:
		if (pe->drops == 0 && pe->drops_other == 0)
			pe->drop_reason = reason;
		if (pe->drop_reason == reason)
			__sync_fetch_and_add(&pe->drops, n);
		else
			__sync_fetch_and_add(&pe->drops_other, n);
		break;
	}
	__sync_fetch_and_add(&fp_net_pending_events, 1);
}

/*
 * A TCP socket closing with events waiting for its owner, and no file (an
 * accepted socket reset before accept(), a connect that failed on a socket
 * the probe never saw connect): nobody will ever have it open and its
 * address may soon be another socket's, so what waited is counted unowned
 * now. One with a file stays: its process may still have it open (a reset
 * closes the socket, not the descriptor) and the walk checks the inode.
 */
static __always_inline void fp_pending_closed(struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct fp_net_pending *pe = bpf_map_lookup_elem(&net_pending, &key);
	__u32 reason = FP_DROP_NET_UNOWNED;
	__u64 *c;

	if (!pe || BPF_CORE_READ(sk, sk_socket))
		return;
	c = bpf_map_lookup_elem(&drops, &reason);
	if (c)
		*c += pe->retransmits + pe->resets_received + pe->rcvq_overflows;
	bpf_map_delete_elem(&net_pending, &key);
}

/*
 * Every TCP state change, in whatever context made it. CLOSE -> SYN_SENT is
 * connect() itself (the owner); SYN_SENT -> CLOSE with sk_err set is a
 * failed connect (tcp_reset and tcp_write_err set sk_err before tcp_done;
 * a close() of a connecting socket sets none and is no failure).
 */
static __always_inline int on_set_state(struct sock *sk, int oldstate, int newstate)
{
	__u64 key = (__u64)sk;
	struct fp_net_owner *o;
	struct fp_net_ep *e = NULL;
	struct fp_proc *p = NULL;

	if (!sk || !fp_sk_tcp(sk))
		return 0;
	if (newstate == FP_TCP_SYN_SENT && oldstate == FP_TCP_CLOSE) {
		bpf_map_delete_elem(&net_owners, &key); /* a recycled pointer's old owner */
		fp_learn_owner(sk);
		o = fp_owner_of(sk, &p);
		if (o) {
			__sync_fetch_and_add(&p->net_connects, 1);
			e = fp_ep_of(sk, o, false);
			if (e)
				__sync_fetch_and_add(&e->connects, 1);
		}
		return 0;
	}
	if (newstate == FP_TCP_SYN_RECV) {
		/* a child socket being born in softirq: whatever owned this address before is gone */
		bpf_map_delete_elem(&net_owners, &key);
		return 0;
	}
	if (newstate != FP_TCP_CLOSE)
		return 0;
	fp_pending_closed(sk);
	o = fp_owner_of(sk, &p);
	if (o) {
		int err = BPF_CORE_READ(sk, sk_err);

		if (oldstate == FP_TCP_SYN_SENT && err != 0) {
			__sync_fetch_and_add(&p->net_connect_failures, 1);
			e = fp_ep_of(sk, o, true);
			if (e) {
				__sync_fetch_and_add(&e->connect_failures, 1);
				e->last_err = err;
				e->last_ns = bpf_ktime_get_ns();
			}
		}
		fp_charge_segs(sk, o, p, e);
	}
	bpf_map_delete_elem(&net_owners, &key);
	return 0;
}

FP_HOOK(inet_sock_set_state, on_set_state((struct sock *)sk, oldstate, newstate), const struct sock *sk,
	const int oldstate, const int newstate)

/*
 * The TCP segments an skb carries (tcp_skb_pcount: TCP_SKB_CB(skb)->
 * tcp_gso_segs): a retransmitted TSO/GSO skb is several segments, and the
 * kernel's RetransSegs (nstat TcpRetransSegs) and tcp_sock.segs_out count
 * segments, so the probe does too. At least 1.
 */
static __always_inline __u32 fp_skb_tcp_segs(const struct sk_buff *skb)
{
	struct tcp_skb_cb *cb;
	__u16 segs;

	if (!skb)
		return 1;
	cb = (struct tcp_skb_cb *)((const char *)skb + bpf_core_field_offset(struct sk_buff, cb));
	segs = BPF_CORE_READ(cb, tcp_gso_segs);
	return segs ? segs : 1;
}

/*
 * A retransmitted packet, from the retransmit timer (softirq) or loss
 * recovery, counted in segments. Since v6.12ish the tracepoint also fires
 * for attempts that failed (err != 0: the packet did not go out), which are
 * not counted.
 */
static __always_inline int on_retransmit(struct sock *sk, const struct sk_buff *skb, int err)
{
	struct fp_net_owner *o;
	struct fp_net_ep *e;
	struct fp_proc *p = NULL;
	__u32 segs;

	if (err || !sk)
		return 0;
	segs = fp_skb_tcp_segs(skb);
	o = fp_owner_of(sk, &p);
	if (!o) {
		fp_pend(sk, FP_PEND_RETRANSMIT, segs, 0);
		return 0;
	}
	__sync_fetch_and_add(&p->net_retransmits, segs);
	e = fp_ep_of(sk, o, true);
	if (e) {
		__sync_fetch_and_add(&e->retransmits, segs);
		e->last_ns = bpf_ktime_get_ns();
	}
	fp_charge_segs(sk, o, p, e);
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(btf_tcp_retransmit_skb, const struct sock *sk, const struct sk_buff *skb)
{
	return on_retransmit((struct sock *)sk, skb, fp_retransmit_err(ctx));
}

SEC("raw_tp/tcp_retransmit_skb")
int BPF_PROG(raw_tcp_retransmit_skb, const struct sock *sk, const struct sk_buff *skb)
{
	return on_retransmit((struct sock *)sk, skb, fp_retransmit_err(ctx));
}

/*
 * A RST the kernel sent on a socket. Resets answering a packet that has no
 * socket (a connect to a closed port, seen from the server's side) come with
 * sk NULL or a time-wait socket: nobody's, not counted. A close() that
 * aborts (unread data, SO_LINGER 0) sets CLOSE, which forgot the owner,
 * before it sends the RST: it runs in the owner, with the socket locked, so
 * the owner is learned again and forgotten once charged.
 */
static __always_inline int on_send_reset(struct sock *sk)
{
	struct fp_net_owner *o;
	struct fp_net_ep *e;
	struct fp_proc *p = NULL;
	bool relearned = false;

	o = fp_owner_of(sk, &p);
	if (!o && sk && BPF_CORE_READ(sk, sk_lock.owned) &&
	    BPF_CORE_READ(sk, __sk_common.skc_state) == FP_TCP_CLOSE) {
		fp_learn_owner(sk);
		o = fp_owner_of(sk, &p);
		relearned = true;
	}
	if (!o)
		return 0;
	__sync_fetch_and_add(&p->net_resets_sent, 1);
	e = fp_ep_of(sk, o, true);
	if (e) {
		__sync_fetch_and_add(&e->resets_sent, 1);
		e->last_ns = bpf_ktime_get_ns();
	}
	if (relearned) {
		__u64 key = (__u64)sk;

		bpf_map_delete_elem(&net_owners, &key);
	}
	return 0;
}

FP_HOOK(tcp_send_reset, on_send_reset((struct sock *)sk), const struct sock *sk, const struct sk_buff *skb)

/* A RST received on a socket (tcp_reset, softirq). */
static __always_inline int on_receive_reset(struct sock *sk)
{
	struct fp_net_owner *o;
	struct fp_net_ep *e;
	struct fp_proc *p = NULL;

	o = fp_owner_of(sk, &p);
	if (!o) {
		fp_pend(sk, FP_PEND_RESET_RECEIVED, 1, 0);
		return 0;
	}
	__sync_fetch_and_add(&p->net_resets_received, 1);
	e = fp_ep_of(sk, o, true);
	if (e) {
		__sync_fetch_and_add(&e->resets_received, 1);
		e->last_ns = bpf_ktime_get_ns();
	}
	return 0;
}

FP_HOOK(tcp_receive_reset, on_receive_reset(sk), struct sock *sk)

/* A packet dropped because the socket's receive queue was full. */
static __always_inline int on_rcvq_full(struct sock *sk)
{
	struct fp_proc *p = NULL;

	if (fp_owner_of(sk, &p))
		__sync_fetch_and_add(&p->net_rcvq_overflows, 1);
	else
		fp_pend(sk, FP_PEND_RCVQ_OVERFLOW, 1, 0);
	return 0;
}

/* sock_queue_rcv_skb's callers (raw, ICMP, packet...); UDP has not used it since v4.10. */
FP_HOOK(sock_rcvqueue_full, on_rcvq_full(sk), struct sock *sk, struct sk_buff *skb)
/* UDP's own: __udp_queue_rcv_skb failed to queue (receive buffer full, or no memory). */
FP_HOOK(udp_fail_queue_rcv_skb, (rc < 0 ? on_rcvq_full(sk) : 0), int rc, struct sock *sk)

/*
 * tcp_rcv_space_adjust runs in tcp_recvmsg (the reader) and where the stack
 * processes received data; only with the socket lock owned is `current` the
 * process that owns the socket (softirq finding it owned only queues to the
 * backlog, which the owner processes in release_sock).
 */
static __always_inline int on_rcv_space_adjust(struct sock *sk)
{
	if (sk && BPF_CORE_READ(sk, sk_lock.owned))
		fp_learn_owner(sk);
	return 0;
}

FP_HOOK(tcp_rcv_space_adjust, on_rcv_space_adjust(sk), struct sock *sk)

/* Adds `n` drops with `reason` to the owner's (process, reason) entry. */
static __always_inline void fp_count_drop_reason(struct fp_net_owner *o, __u32 reason, __u64 n)
{
	struct fp_net_drop_key k;
	__u64 *c;
	long err;

	__builtin_memset(&k, 0, sizeof(k));
	k.tgid = o->tgid;
	k.reason = reason;
	k.start_ns = o->start_ns;
	c = bpf_map_lookup_elem(&net_drop_reasons, &k);
	if (c) {
		__sync_fetch_and_add(c, n);
		return;
	}
	err = bpf_map_update_elem(&net_drop_reasons, &k, &n, BPF_NOEXIST);
	if (err == -17 /* EEXIST: another CPU created it */) {
		c = bpf_map_lookup_elem(&net_drop_reasons, &k);
		if (c)
			__sync_fetch_and_add(c, n);
	} else if (err) {
		fp_drop(FP_DROP_NET_DROP_REASONS_FULL);
	}
}

/*
 * skb:kfree_skb, a packet freed because it was dropped, with the kernel's
 * reason (v5.17+). It fires for every skb freed without being consumed, on
 * every path (most with reason NOT_SPECIFIED), so the reason is checked
 * first and the socket second, before any map work.
 *
 * The socket: skb->sk where the skb is charged to one (everything sent: a
 * neighbour queue overflow, a qdisc, netfilter OUTPUT; received data once
 * queued), else rx_sk (v6.11+: the socket a received packet was for). A
 * received packet dropped before it has either (on 6.1: UDP and TCP receive
 * queue drops, where only udp_fail_queue_rcv_skb / sock_rcvqueue_full see the
 * socket) is not counted here: finding its socket would take a lookup in the
 * program, on this hottest of network paths. Unowned sockets are skipped
 * silently: drops on kernel sockets and sockets of processes the probe never
 * saw use them are not the net_unowned counter's business.
 */
static __always_inline int on_kfree_skb(struct sk_buff *skb, __u32 reason, __u64 rx_sk, bool btf)
{
	struct fp_net_owner *o;
	struct fp_net_ep *e;
	struct fp_proc *p = NULL;
	struct sock *sk;

	if (!fp_drop_reason_counted(reason) || !skb)
		return 0;
	sk = btf ? skb->sk : BPF_CORE_READ(skb, sk);
	if (!sk)
		sk = (struct sock *)rx_sk;
	if (!sk)
		return 0;
	o = fp_owner_of(sk, &p);
	if (!o) {
		__u16 fam = fp_sk_family(sk);

		if (fam == FP_AF_INET || fam == FP_AF_INET6)
			fp_pend(sk, FP_PEND_DROP, 1, reason);
		return 0;
	}
	__sync_fetch_and_add(&p->net_drops, 1);
	fp_count_drop_reason(o, reason, 1);
	e = fp_ep_of(sk, o, false);
	if (e)
		__sync_fetch_and_add(&e->drops, 1);
	return 0;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(btf_kfree_skb, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	return on_kfree_skb(skb, (__u32)reason, fp_kfree_skb_rx_sk(ctx), true);
}

SEC("raw_tp/kfree_skb")
int BPF_PROG(raw_kfree_skb, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	return on_kfree_skb(skb, (__u32)reason, fp_kfree_skb_rx_sk(ctx), false);
}

/*
 * The resolver: a walk of every process's open files (iter/task_file; a
 * thread sharing its leader's file table is skipped by the kernel), run by
 * the daemon when net_pending has something. A socket found there belongs to
 * the process that has it open (the first found, when several share it); what
 * waited for it is charged to that process and the socket gets it as owner.
 * Entries the walk does not find (the socket was closed, or is the kernel's)
 * are the daemon's to count as unowned and delete.
 */
static __always_inline void fp_resolve(struct sock *sk, struct task_struct *task, struct fp_net_pending *pe)
{
	__u64 key = (__u64)sk;
	__u32 tgid = task->tgid;
	struct fp_net_owner *o = bpf_map_lookup_elem(&net_owners, &key);
	struct fp_net_ep *e = NULL;
	struct fp_proc *p = NULL;
	__u32 retrans, resets, overflows, drops, drops_other;

	if (o)
		p = fp_owner_proc(key, o); /* learned meanwhile: charged there */
	if (!p) {
		p = fp_proc_get(tgid, task, true);
		if (!p)
			return; /* left pending: counted unowned by the daemon */
		struct fp_net_owner v = {};

		v.tgid = tgid;
		v.start_ns = p->start_ns;
		if (bpf_map_update_elem(&net_owners, &key, &v, BPF_ANY)) {
			fp_drop(FP_DROP_NET_OWNERS_FULL);
			return;
		}
		o = bpf_map_lookup_elem(&net_owners, &key);
		if (!o)
			return;
	}
	fp_net_resolve_stats.charged++;
	/* the owner is in net_owners now: new events go to it, not here */
	retrans = __sync_lock_test_and_set(&pe->retransmits, 0);
	resets = __sync_lock_test_and_set(&pe->resets_received, 0);
	overflows = __sync_lock_test_and_set(&pe->rcvq_overflows, 0);
	drops = __sync_lock_test_and_set(&pe->drops, 0);
	drops_other = __sync_lock_test_and_set(&pe->drops_other, 0);
	fp_net_resolve_stats.events += retrans + resets + overflows + drops + drops_other;
	if (retrans)
		__sync_fetch_and_add(&p->net_retransmits, retrans);
	if (resets)
		__sync_fetch_and_add(&p->net_resets_received, resets);
	if (overflows)
		__sync_fetch_and_add(&p->net_rcvq_overflows, overflows);
	if (drops + drops_other) {
		__sync_fetch_and_add(&p->net_drops, drops + drops_other);
		if (drops)
			fp_count_drop_reason(o, pe->drop_reason, drops);
	}
	if (retrans || resets) {
		e = fp_ep_of(sk, o, true);
		if (e) {
			if (retrans)
				__sync_fetch_and_add(&e->retransmits, retrans);
			if (resets)
				__sync_fetch_and_add(&e->resets_received, resets);
			e->last_ns = bpf_ktime_get_ns();
		}
	}
	if (fp_sk_tcp(sk))
		fp_charge_segs(sk, o, p, e); /* all it sent so far: the owner is new */
	bpf_map_delete_elem(&net_pending, &key);
}

SEC("iter/task_file")
int net_resolve(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct fp_net_pending *pe;
	struct socket *sock;
	struct sock *sk;
	__u64 key;

	if (!task || !file)
		return 0;
	sock = bpf_sock_from_file(file);
	if (!sock)
		return 0;
	fp_net_resolve_stats.sockets++;
	sk = BPF_CORE_READ(sock, sk);
	key = (__u64)sk;
	if (!sk)
		return 0;
	pe = bpf_map_lookup_elem(&net_pending, &key);
	if (!pe)
		return 0;
	if (pe->ino && pe->ino != BPF_CORE_READ(file, f_inode, i_ino))
		return 0; /* another socket at a freed one's address: the sweep counts it */
	fp_net_resolve_stats.found++;
	fp_resolve(sk, task, pe);
	return 0;
}
