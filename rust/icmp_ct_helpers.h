/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel API icmp_ct's Rust code uses that the 6.12 `kernel` crate does not bind.
 *
 * bindgen reads this header at build time (rust/bindings_generated.rs, never committed);
 * rust/icmp_ct_shim.c implements the functions declared here, which wrap static inline
 * helpers and macros that bindgen cannot turn into callable symbols.
 */
#ifndef ICMP_CT_HELPERS_H
#define ICMP_CT_HELPERS_H

#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter_ipv4.h>
#include <linux/proc_fs.h>
#include <linux/rcupdate.h>
#include <linux/rhashtable.h>
#include <linux/slab.h>
#include <linux/workqueue.h>
#include <linux/seq_file.h>
#include <linux/seq_file_net.h>
#include <linux/skbuff.h>
#include <linux/spinlock.h>
#include <linux/sysctl.h>
#include <net/net_namespace.h>
#include <net/netns/generic.h>

void *icmp_ct_net_generic(const struct net *net, unsigned int id);
bool icmp_ct_net_is_init(const struct net *net);
bool icmp_ct_nf_log_all_netns(void);
unsigned int icmp_ct_net_inum(const struct net *net);
struct proc_dir_entry *icmp_ct_net_proc_net(const struct net *net);
struct proc_dir_entry *icmp_ct_net_proc_net_stat(const struct net *net);
struct net *icmp_ct_seq_file_net(struct seq_file *seq);
struct net *icmp_ct_seq_file_single_net(struct seq_file *seq);
/* /proc/net/ip_conntrack (rust/abstractions/procfs.rs, table/walks.rs): see the shim. */
int icmp_ct_seq_open_net(struct inode *inode, struct file *file,
			 const struct seq_operations *ops, unsigned int state_size);
int icmp_ct_seq_release_net(struct inode *inode, struct file *file);
void icmp_ct_table_walk_resume(struct rhashtable_iter *iter);
struct icmp_ct_node *icmp_ct_table_walk_peek(struct rhashtable_iter *iter);
/* End of /proc/net/ip_conntrack. */
void icmp_ct_rcu_read_lock(void);
void icmp_ct_rcu_read_unlock(void);
void icmp_ct_spin_lock_bh(spinlock_t *lock);
void icmp_ct_spin_unlock_bh(spinlock_t *lock);
const void *icmp_ct_skb_header_pointer(const struct sk_buff *skb, int offset, int len,
				       void *buffer);
int icmp_ct_skb_network_offset(const struct sk_buff *skb);
unsigned long icmp_ct_jiffies(void);
unsigned long icmp_ct_totalram_pages(void);
__u32 icmp_ct_skb_mark(const struct sk_buff *skb);
void icmp_ct_skb_set_mark(struct sk_buff *skb, __u32 mark);
bool icmp_ct_skb_is_notrack(const struct sk_buff *skb);
int icmp_ct_skb_iif(const struct sk_buff *skb);
bool icmp_ct_skb_csum_verified(const struct sk_buff *skb);
/* Test builds only (ICMP_CT_RACE_WINDOWS): rust/abstractions/race_window.rs. */
void icmp_ct_race_window(int window);
bool icmp_ct_skb_from_kernel_socket(const struct sk_buff *skb);
/* nf_hook_ops has a bitfield; Rust sees it as an opaque blob and fills it in here. */
void icmp_ct_hook_ops_init(struct nf_hook_ops *ops, nf_hookfn *hook, u8 pf,
			   unsigned int hooknum, int priority);

/*
 * The connection table. Each entry is hashed twice, by its original and by its reply tuple,
 * in one rhashtable (once when both are the same); writers take only its bucket locks.
 * An entry stores only its original key; the Rust code computes a node's key from it
 * (icmp_ct_node_hash and icmp_ct_node_cmp below). A key is a tuple as ten words, family
 * included (rust/proto/key.rs).
 */
struct icmp_ct_key {
	__u32 w[10];
};

/* One direction of an entry, as hashed: node[dir] of its entry. */
struct icmp_ct_node {
	struct rhash_head head;
	__u8 dir; /* 0: original, 1: reply */
	__u8 single; /* node 0 of an entry whose reply key is its original key */
	__u8 sourced; /* node 0 of an entry counted in its icmp_ct_source (in the padding) */
};

/* Owned by the Rust code; only its layout is shared, for the table's parameters. */
struct icmp_ct_entry {
	struct icmp_ct_node node[2];
	struct list_head list; /* in its icmp_ct_source's entries, when counted in one */
	struct icmp_ct_key key; /* the original direction's */
	__u64 state; /* packed flow state and life (rust/proto/entry_word.rs), atomics only */
	__u32 deadline; /* low 32 bits of jiffies; timeouts stay below 2^31 jiffies */
	__u32 unlinked; /* 1 once whoever takes it out of the table has claimed that (atomics) */
	struct rcu_head rcu;
	/* Query entries' round trips (rust/proto/rtt.rs): low 32 bits of microseconds. */
	__u32 request_us; /* when the request that created or last refreshed it passed */
	__u32 rtt_us; /* from that request to the reply that answered it */
};

/* Words of TCP sequence state (rust/proto/tcp_window.rs, TcpWindows::to_words). */
#define ICMP_CT_TCP_WINDOW_WORDS 8

/*
 * A TCP entry: the entry, then its sequence state, read and written under `lock`. Its own
 * slab cache, so that other entries stay one 128-byte object.
 */
struct icmp_ct_tcp_entry {
	struct icmp_ct_entry entry;
	spinlock_t lock;
	__u32 windows[ICMP_CT_TCP_WINDOW_WORDS];
};

/*
 * One source of ip_ct_max_per_source (rust/proto/quota.rs): an IPv4 address or an IPv6 /64,
 * in the table's `sources` while entries counted in it are linked. 64 bytes (kmalloc-64)
 * without lock debugging.
 */
struct icmp_ct_source_key {
	__u32 w[3];
};

struct icmp_ct_source {
	struct rhash_head head;
	struct icmp_ct_source_key key;
	__u32 count; /* its entries that are live or expired, not closed (atomics only) */
	atomic_t refs; /* its linked entries, plus insertions under way; 0: being removed */
	spinlock_t lock; /* for `entries` */
	struct list_head entries; /* its linked entries, oldest first (RCU list) */
	struct rcu_head rcu;
};

struct icmp_ct_table {
	struct rhashtable ht;
	struct rhashtable sources; /* struct icmp_ct_source, by key */
};

/* Buckets of a new table; it never shrinks below this. */
#define ICMP_CT_TABLE_MIN_BUCKETS 64

#ifndef __BINDGEN__
/* Defined in Rust (rust/abstractions/table.rs): a node's key, hashed and compared. */
u32 icmp_ct_node_hash(const void *node, u32 len, u32 seed);
int icmp_ct_node_cmp(struct rhashtable_compare_arg *arg, const void *node);
#endif

int icmp_ct_table_init(struct icmp_ct_table *table);
void icmp_ct_table_destroy(struct icmp_ct_table *table, struct list_head *entries);
struct icmp_ct_entry *icmp_ct_entries_pop(struct list_head *entries);
u32 icmp_ct_key_hash(const void *key, u32 len, u32 seed);
struct icmp_ct_node *icmp_ct_table_lookup(struct icmp_ct_table *table,
					  const struct icmp_ct_key *key);
int icmp_ct_table_insert(struct icmp_ct_table *table, struct icmp_ct_node *node,
			 const struct icmp_ct_key *key);
int icmp_ct_table_remove(struct icmp_ct_table *table, struct icmp_ct_node *node);
const struct bucket_table *icmp_ct_table_first(struct icmp_ct_table *table);
const struct bucket_table *icmp_ct_table_following(const struct bucket_table *tbl);
unsigned int icmp_ct_table_buckets(const struct bucket_table *tbl);
struct icmp_ct_node *icmp_ct_table_bucket(const struct bucket_table *tbl, unsigned int bucket);
struct icmp_ct_node *icmp_ct_table_next(const struct icmp_ct_node *node);
void icmp_ct_table_walk_enter(struct icmp_ct_table *table, struct rhashtable_iter *iter);
void icmp_ct_table_walk_start(struct rhashtable_iter *iter);
struct icmp_ct_node *icmp_ct_table_walk_next(struct rhashtable_iter *iter);
void icmp_ct_table_walk_stop(struct rhashtable_iter *iter);
void icmp_ct_table_walk_exit(struct rhashtable_iter *iter);
void icmp_ct_cond_resched(void);

struct icmp_ct_source *icmp_ct_source_lookup(struct icmp_ct_table *table,
					     const struct icmp_ct_source_key *key);
struct icmp_ct_source *icmp_ct_source_get(struct icmp_ct_table *table,
					  const struct icmp_ct_source_key *key);
void icmp_ct_source_put(struct icmp_ct_table *table, struct icmp_ct_source *source);
void icmp_ct_source_link(struct icmp_ct_source *source, struct icmp_ct_entry *entry);
void icmp_ct_source_unlink(struct icmp_ct_source *source, struct icmp_ct_entry *entry);
struct icmp_ct_entry *icmp_ct_source_oldest(struct icmp_ct_source *source);
struct icmp_ct_entry *icmp_ct_source_newer(struct icmp_ct_source *source,
					   struct icmp_ct_entry *entry);

struct kmem_cache *icmp_ct_entry_cache_create(void);
struct icmp_ct_entry *icmp_ct_entry_alloc(struct kmem_cache *cache);
struct kmem_cache *icmp_ct_tcp_entry_cache_create(void);
struct icmp_ct_entry *icmp_ct_tcp_entry_alloc(struct kmem_cache *cache);

void icmp_ct_init_delayed_work(struct delayed_work *work, work_func_t func);
struct delayed_work *icmp_ct_to_delayed_work(struct work_struct *work);
bool icmp_ct_schedule_delayed_work(struct delayed_work *work, unsigned long delay);

#ifdef __BINDGEN__
/* Typed copies of enum and macro values: anonymous enums have no stable Rust name. */
const unsigned int ICMP_CT_NF_ACCEPT = NF_ACCEPT;
const unsigned int ICMP_CT_NF_DROP = NF_DROP;
const unsigned char ICMP_CT_NFPROTO_IPV4 = NFPROTO_IPV4;
const unsigned char ICMP_CT_NFPROTO_IPV6 = NFPROTO_IPV6;
const unsigned int ICMP_CT_NF_INET_PRE_ROUTING = NF_INET_PRE_ROUTING;
const unsigned int ICMP_CT_NF_INET_LOCAL_IN = NF_INET_LOCAL_IN;
const unsigned int ICMP_CT_NF_INET_LOCAL_OUT = NF_INET_LOCAL_OUT;
const unsigned int ICMP_CT_NF_INET_POST_ROUTING = NF_INET_POST_ROUTING;
const unsigned int ICMP_CT_HZ = HZ;
const unsigned int ICMP_CT_TABLE_INITIAL_BUCKETS = ICMP_CT_TABLE_MIN_BUCKETS;
#endif

/*
 * Per-CPU counters (rust/abstractions/percpu.rs): unsigned longs in a per-CPU area (below).
 * this_cpu_add() and the summing loop are macros, hence these wrappers.
 */
#include <linux/percpu.h>

void icmp_ct_percpu_counter_add(unsigned long __percpu *counters, size_t index,
				unsigned long amount);
unsigned long icmp_ct_percpu_counter_sum(const unsigned long __percpu *counters, size_t index);

/*
 * Per-CPU areas of `size` zeroed bytes per possible CPU (rust/abstractions/percpu.rs), and
 * this CPU's copy for code serving a softirq (`SoftirqSlot`).
 */
void __percpu *icmp_ct_percpu_area_alloc(size_t size, size_t align);
void icmp_ct_percpu_area_free(void __percpu *area);
void *icmp_ct_percpu_softirq_ptr(void __percpu *area);

#endif /* ICMP_CT_HELPERS_H */
