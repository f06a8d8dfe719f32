// SPDX-License-Identifier: GPL-2.0
/*
 * Out-of-line copies of static inline kernel helpers for icmp_ct's Rust code, and the
 * module parameters' declarations. Nothing here holds logic of its own.
 */
#include <linux/jhash.h>
#include <linux/mm.h>
#include <linux/rculist.h>
#include <net/netfilter/nf_log.h>
#include <net/sock.h>

#include "icmp_ct_helpers.h"

void *icmp_ct_net_generic(const struct net *net, unsigned int id)
{
	return net_generic(net, id);
}

bool icmp_ct_net_is_init(const struct net *net)
{
	return net_eq(net, &init_net);
}

/* net.netfilter.nf_log_all_netns, the host's switch for logging outside init_net. */
bool icmp_ct_nf_log_all_netns(void)
{
	return READ_ONCE(sysctl_nf_log_all_netns);
}

unsigned int icmp_ct_net_inum(const struct net *net)
{
	return net->ns.inum;
}

struct proc_dir_entry *icmp_ct_net_proc_net(const struct net *net)
{
	return net->proc_net;
}

struct proc_dir_entry *icmp_ct_net_proc_net_stat(const struct net *net)
{
	return net->proc_net_stat;
}

struct net *icmp_ct_seq_file_net(struct seq_file *seq)
{
	return seq_file_net(seq);
}

struct net *icmp_ct_seq_file_single_net(struct seq_file *seq)
{
	return seq_file_single_net(seq);
}

/* --- /proc/net/ip_conntrack: files with a release hook, and the listing's walk --- */

/*
 * Copies of fs/proc/proc_net.c's static seq_open_net() and seq_release_net(), for files
 * made with proc_create_data() under a namespace's /proc/net (rust/abstractions/procfs.rs,
 * ProcEntry::seq): the seq_operations and private size come from the caller, so that the
 * file's proc_ops can have a release of its own. The private area starts with a
 * seq_net_private, as seq_file_net() expects.
 */
int icmp_ct_seq_open_net(struct inode *inode, struct file *file,
			 const struct seq_operations *ops, unsigned int state_size)
{
	struct seq_net_private *p;
	struct net *net;

	if (WARN_ON_ONCE(state_size < sizeof(*p)))
		return -EINVAL;
	if (file->f_mode & FMODE_WRITE)
		return -EACCES;
	net = maybe_get_net(proc_get_parent_data(inode));
	if (!net)
		return -ENXIO;
	p = __seq_open_private(file, ops, state_size);
	if (!p) {
		put_net(net);
		return -ENOMEM;
	}
#ifdef CONFIG_NET_NS
	p->net = net;
	netns_tracker_alloc(net, &p->ns_tracker, GFP_KERNEL);
#endif
	return 0;
}

int icmp_ct_seq_release_net(struct inode *inode, struct file *file)
{
	struct seq_file *seq = file->private_data;
#ifdef CONFIG_NET_NS
	struct seq_net_private *priv = seq->private;

	put_net_track(priv->net, &priv->ns_tracker);
#else
	put_net(&init_net);
#endif
	return seq_release_private(inode, file);
}

/*
 * rhashtable_walk_start() for a walk that must not miss a node that stays in the table: if
 * the node the walker stood on was removed while it was stopped, rhashtable resumes by
 * position in the bucket, which skips a node when another one before it went too
 * (lib/rhashtable.c: "you may miss objects if there are removals"). Rescan that bucket
 * from its head instead: its nodes may be seen twice, none is missed. After a resize (the
 * check's -EAGAIN) the walker already starts over in the new table.
 */
void icmp_ct_table_walk_resume(struct rhashtable_iter *iter)
{
	bool stood = iter->p;

	if (!rhashtable_walk_start_check(iter) && stood && !iter->p)
		iter->skip = 0;
}

/*
 * The node the walker stands on (the last one next returned, if still in the table), or
 * else the following one, without moving past it; NULL at the end. A resize rewinds the
 * walk to the start of the new bucket array, as in icmp_ct_table_walk_next().
 */
struct icmp_ct_node *icmp_ct_table_walk_peek(struct rhashtable_iter *iter)
{
	struct icmp_ct_node *node;

	do
		node = rhashtable_walk_peek(iter);
	while (PTR_ERR_OR_ZERO(node) == -EAGAIN);
	return IS_ERR(node) ? NULL : node;
}

/* --- end of /proc/net/ip_conntrack --- */

void icmp_ct_rcu_read_lock(void)
{
	rcu_read_lock();
}

void icmp_ct_rcu_read_unlock(void)
{
	rcu_read_unlock();
}

void icmp_ct_spin_lock_bh(spinlock_t *lock)
{
	spin_lock_bh(lock);
}

void icmp_ct_spin_unlock_bh(spinlock_t *lock)
{
	spin_unlock_bh(lock);
}

const void *icmp_ct_skb_header_pointer(const struct sk_buff *skb, int offset, int len,
				       void *buffer)
{
	return skb_header_pointer(skb, offset, len, buffer);
}

int icmp_ct_skb_network_offset(const struct sk_buff *skb)
{
	return skb_network_offset(skb);
}

unsigned long icmp_ct_jiffies(void)
{
	return READ_ONCE(jiffies);
}

unsigned long icmp_ct_totalram_pages(void)
{
	return totalram_pages();
}

__u32 icmp_ct_skb_mark(const struct sk_buff *skb)
{
	return skb->mark;
}

void icmp_ct_skb_set_mark(struct sk_buff *skb, __u32 mark)
{
	skb->mark = mark;
}

int icmp_ct_skb_iif(const struct sk_buff *skb)
{
	return skb->skb_iif;
}

bool icmp_ct_skb_csum_verified(const struct sk_buff *skb)
{
	return skb_csum_unnecessary(skb);
}

#ifdef ICMP_CT_RACE_WINDOWS
/*
 * Test builds only: hold one race window open (rust/abstractions/race_window.rs) until the
 * test closes it (race_window = 0) or race_window_ms have passed. Here, not in Rust, because
 * the 6.12 `kernel` crate has no module parameters.
 */
static int race_window;
module_param(race_window, int, 0644);
MODULE_PARM_DESC(race_window, "test builds: the race window to hold open (0: none)");
static int race_window_ms = 10000;
module_param(race_window_ms, int, 0644);
MODULE_PARM_DESC(race_window_ms, "test builds: how long to hold it at most, in milliseconds");

void icmp_ct_race_window(int window)
{
	unsigned long end;

	if (window != READ_ONCE(race_window))
		return;
	end = jiffies + msecs_to_jiffies(READ_ONCE(race_window_ms));
	while (READ_ONCE(race_window) == window && time_before(jiffies, end))
		cpu_relax();
}
#endif

/*
 * icmp_send(), icmpv6_send() and neighbour discovery write on per-CPU or per-netns sockets
 * made by inet_ctl_sock_create(), which are kernel sockets; a process can only write on
 * sockets it created (sk_kern_sock 0), raw ones included.
 */
bool icmp_ct_skb_from_kernel_socket(const struct sk_buff *skb)
{
	const struct sock *sk = skb->sk;

	return sk && sk_fullsock(sk) && sk->sk_kern_sock;
}

void icmp_ct_hook_ops_init(struct nf_hook_ops *ops, nf_hookfn *hook, u8 pf,
			   unsigned int hooknum, int priority)
{
	*ops = (struct nf_hook_ops){
		.hook = hook,
		.pf = pf,
		.hooknum = hooknum,
		.priority = priority,
	};
}

bool icmp_ct_skb_is_notrack(const struct sk_buff *skb)
{
#if IS_ENABLED(CONFIG_NF_CONNTRACK)
	/* The raw table's notrack (nft `notrack`, xt CT --notrack) marks the skb so. */
	return (skb_get_nfct(skb) & NFCT_INFOMASK) == IP_CT_UNTRACKED;
#else
	return false;
#endif
}

/*
 * An IPv4 key's words 3-5 and 7-9 are zero (rust/proto/key.rs): hash only the words that
 * can differ, with the family and protocol word as part of the seed.
 */
u32 icmp_ct_key_hash(const void *data, u32 len, u32 seed)
{
	const struct icmp_ct_key *key = data;

	if (key->w[0] >> 24 == 4)
		return jhash_3words(key->w[1], key->w[2], key->w[6], seed ^ key->w[0]);
	return jhash2(key->w, ARRAY_SIZE(key->w), seed);
}

static const struct rhashtable_params icmp_ct_table_params = {
	.head_offset = offsetof(struct icmp_ct_node, head),
	.key_len = sizeof(struct icmp_ct_key),
	.hashfn = icmp_ct_key_hash,
	.obj_hashfn = icmp_ct_node_hash,
	.obj_cmpfn = icmp_ct_node_cmp,
	.min_size = ICMP_CT_TABLE_MIN_BUCKETS,
	.nelem_hint = ICMP_CT_TABLE_MIN_BUCKETS * 3 / 4,
	.automatic_shrinking = true,
};

/* The quota's flag lives in node padding: an ICMP entry stays one 128-byte slab object. */
static_assert(sizeof(struct icmp_ct_entry) <= 128);

static const struct rhashtable_params icmp_ct_source_params = {
	.head_offset = offsetof(struct icmp_ct_source, head),
	.key_offset = offsetof(struct icmp_ct_source, key),
	.key_len = sizeof(struct icmp_ct_source_key),
	.automatic_shrinking = true,
};

int icmp_ct_table_init(struct icmp_ct_table *table)
{
	int err;

	err = rhashtable_init(&table->ht, &icmp_ct_table_params);
	if (err)
		return err;
	err = rhashtable_init(&table->sources, &icmp_ct_source_params);
	if (err)
		rhashtable_destroy(&table->ht);
	return err;
}

/*
 * Called for every node: keeps each entry once (node 0) on `arg`, through its `list`, which
 * nobody follows any more. Freeing it here would free node 1 before it is visited.
 */
static void icmp_ct_entry_collect(void *ptr, void *arg)
{
	struct icmp_ct_node *node = ptr;

	if (node->dir == 0)
		list_add_tail(&container_of(node, struct icmp_ct_entry, node[0])->list, arg);
}

static void icmp_ct_source_free(void *source, void *arg)
{
	kfree(source);
}

/*
 * Nobody reads or writes the table any more. Cancels a resize under way, frees the bucket
 * arrays and the sources, and hands the entries to the caller on `entries` to free.
 */
void icmp_ct_table_destroy(struct icmp_ct_table *table, struct list_head *entries)
{
	INIT_LIST_HEAD(entries);
	rhashtable_free_and_destroy(&table->ht, icmp_ct_entry_collect, entries);
	rhashtable_free_and_destroy(&table->sources, icmp_ct_source_free, NULL);
}

struct icmp_ct_entry *icmp_ct_entries_pop(struct list_head *entries)
{
	struct icmp_ct_entry *entry;

	entry = list_first_entry_or_null(entries, struct icmp_ct_entry, list);
	if (entry)
		list_del(&entry->list);
	return entry;
}

struct icmp_ct_source *icmp_ct_source_lookup(struct icmp_ct_table *table,
					     const struct icmp_ct_source_key *key)
{
	return rhashtable_lookup(&table->sources, key, icmp_ct_source_params);
}

/*
 * The node of `key` with a reference taken, added if there is none; NULL without memory. A
 * node whose references reached 0 is never used again: whoever dropped the last removes
 * it, and so may we, rather than wait (removing a node twice finds nothing the second time;
 * only the one who dropped the last reference frees it).
 */
struct icmp_ct_source *icmp_ct_source_get(struct icmp_ct_table *table,
					  const struct icmp_ct_source_key *key)
{
	struct icmp_ct_source *source, *fresh = NULL;
	int tries;

	rcu_read_lock();
	for (tries = 0; tries < 4; tries++) {
		source = icmp_ct_source_lookup(table, key);
		if (!source) {
			if (!fresh) {
				/* From the packet path: never sleep, never warn. */
				fresh = kzalloc(sizeof(*fresh), GFP_ATOMIC | __GFP_NOWARN);
				if (!fresh)
					break;
				fresh->key = *key;
				atomic_set(&fresh->refs, 1);
				spin_lock_init(&fresh->lock);
				INIT_LIST_HEAD(&fresh->entries);
			}
			source = rhashtable_lookup_get_insert_fast(&table->sources, &fresh->head,
								   icmp_ct_source_params);
			if (!source) {
				rcu_read_unlock();
				return fresh;
			}
			if (IS_ERR(source))
				break;
		}
		if (atomic_inc_not_zero(&source->refs)) {
			rcu_read_unlock();
			kfree(fresh);
			return source;
		}
		rhashtable_remove_fast(&table->sources, &source->head, icmp_ct_source_params);
	}
	rcu_read_unlock();
	kfree(fresh);
	return NULL;
}

/* Drops a reference; the last removes the node, freed after a grace period. */
void icmp_ct_source_put(struct icmp_ct_table *table, struct icmp_ct_source *source)
{
	if (!atomic_dec_and_test(&source->refs))
		return;
	rhashtable_remove_fast(&table->sources, &source->head, icmp_ct_source_params);
	kfree_rcu(source, rcu);
}

void icmp_ct_source_link(struct icmp_ct_source *source, struct icmp_ct_entry *entry)
{
	spin_lock_bh(&source->lock);
	list_add_tail_rcu(&entry->list, &source->entries);
	spin_unlock_bh(&source->lock);
}

void icmp_ct_source_unlink(struct icmp_ct_source *source, struct icmp_ct_entry *entry)
{
	spin_lock_bh(&source->lock);
	list_del_rcu(&entry->list);
	spin_unlock_bh(&source->lock);
}

struct icmp_ct_entry *icmp_ct_source_oldest(struct icmp_ct_source *source)
{
	return list_first_or_null_rcu(&source->entries, struct icmp_ct_entry, list);
}

struct icmp_ct_entry *icmp_ct_source_newer(struct icmp_ct_source *source,
					   struct icmp_ct_entry *entry)
{
	return list_next_or_null_rcu(&source->entries, &entry->list, struct icmp_ct_entry, list);
}

struct icmp_ct_node *icmp_ct_table_lookup(struct icmp_ct_table *table,
					  const struct icmp_ct_key *key)
{
	return rhashtable_lookup(&table->ht, key, icmp_ct_table_params);
}

int icmp_ct_table_insert(struct icmp_ct_table *table, struct icmp_ct_node *node,
			 const struct icmp_ct_key *key)
{
	return rhashtable_lookup_insert_key(&table->ht, key, &node->head, icmp_ct_table_params);
}

int icmp_ct_table_remove(struct icmp_ct_table *table, struct icmp_ct_node *node)
{
	return rhashtable_remove_fast(&table->ht, &node->head, icmp_ct_table_params);
}

const struct bucket_table *icmp_ct_table_first(struct icmp_ct_table *table)
{
	return rht_dereference_rcu(table->ht.tbl, &table->ht);
}

const struct bucket_table *icmp_ct_table_following(const struct bucket_table *tbl)
{
	return rcu_dereference(tbl->future_tbl);
}

unsigned int icmp_ct_table_buckets(const struct bucket_table *tbl)
{
	return tbl->size;
}

static struct icmp_ct_node *icmp_ct_node_of(struct rhash_head *head)
{
	return rht_is_a_nulls(head) ? NULL : container_of(head, struct icmp_ct_node, head);
}

struct icmp_ct_node *icmp_ct_table_bucket(const struct bucket_table *tbl, unsigned int bucket)
{
	return icmp_ct_node_of(rht_ptr_rcu(rht_bucket(tbl, bucket)));
}

struct icmp_ct_node *icmp_ct_table_next(const struct icmp_ct_node *node)
{
	return icmp_ct_node_of(rcu_dereference(node->head.next));
}

void icmp_ct_table_walk_enter(struct icmp_ct_table *table, struct rhashtable_iter *iter)
{
	rhashtable_walk_enter(&table->ht, iter);
}

void icmp_ct_table_walk_start(struct rhashtable_iter *iter)
{
	rhashtable_walk_start(iter);
}

/*
 * The walk's next node, NULL at its end. A resize rewinds the walk to the start of the new
 * bucket array (-EAGAIN): nodes may be seen again, none is missed.
 */
struct icmp_ct_node *icmp_ct_table_walk_next(struct rhashtable_iter *iter)
{
	struct icmp_ct_node *node;

	do
		node = rhashtable_walk_next(iter);
	while (PTR_ERR_OR_ZERO(node) == -EAGAIN);
	return IS_ERR(node) ? NULL : node;
}

void icmp_ct_table_walk_stop(struct rhashtable_iter *iter)
{
	rhashtable_walk_stop(iter);
}

void icmp_ct_table_walk_exit(struct rhashtable_iter *iter)
{
	rhashtable_walk_exit(iter);
}

void icmp_ct_cond_resched(void)
{
	cond_resched();
}

void icmp_ct_init_delayed_work(struct delayed_work *work, work_func_t func)
{
	INIT_DELAYED_WORK(work, func);
}

struct delayed_work *icmp_ct_to_delayed_work(struct work_struct *work)
{
	return to_delayed_work(work);
}

bool icmp_ct_schedule_delayed_work(struct delayed_work *work, unsigned long delay)
{
	return queue_delayed_work(system_power_efficient_wq, work, delay);
}

/* Entries other than TCP ones stay one 128-byte slab object (design.rst, "Memory per entry"). */
static_assert(sizeof(struct icmp_ct_entry) <= 128);

struct kmem_cache *icmp_ct_entry_cache_create(void)
{
	return kmem_cache_create("icmp_ct_entry", sizeof(struct icmp_ct_entry), 0,
				 SLAB_HWCACHE_ALIGN, NULL);
}

struct icmp_ct_entry *icmp_ct_entry_alloc(struct kmem_cache *cache)
{
	/* Called from the packet path: never sleep, never warn on a full table's memory. */
	return kmem_cache_zalloc(cache, GFP_ATOMIC | __GFP_NOWARN);
}

struct kmem_cache *icmp_ct_tcp_entry_cache_create(void)
{
	return kmem_cache_create("icmp_ct_tcp_entry", sizeof(struct icmp_ct_tcp_entry), 0,
				 SLAB_HWCACHE_ALIGN, NULL);
}

struct icmp_ct_entry *icmp_ct_tcp_entry_alloc(struct kmem_cache *cache)
{
	struct icmp_ct_tcp_entry *tcp = kmem_cache_zalloc(cache, GFP_ATOMIC | __GFP_NOWARN);

	if (!tcp)
		return NULL;
	spin_lock_init(&tcp->lock);
	return &tcp->entry;
}

void icmp_ct_percpu_counter_add(unsigned long __percpu *counters, size_t index,
				unsigned long amount)
{
	this_cpu_add(counters[index], amount);
}

unsigned long icmp_ct_percpu_counter_sum(const unsigned long __percpu *counters, size_t index)
{
	unsigned long sum = 0;
	int cpu;

	for_each_possible_cpu(cpu)
		sum += READ_ONCE(*per_cpu_ptr(&counters[index], cpu));
	return sum;
}

void __percpu *icmp_ct_percpu_area_alloc(size_t size, size_t align)
{
	return __alloc_percpu(size, align);
}

void icmp_ct_percpu_area_free(void __percpu *area)
{
	free_percpu(area);
}

/*
 * This CPU's copy of `area` when the caller serves a softirq: it cannot migrate, and no other
 * user of the copy runs on this CPU until it returns (softirqs do not nest on a CPU; process
 * context, hard interrupts and NMIs get NULL here).
 */
void *icmp_ct_percpu_softirq_ptr(void __percpu *area)
{
	if (!in_serving_softirq() || in_hardirq() || in_nmi())
		return NULL;
	return this_cpu_ptr(area);
}

/*
 * Module parameters: the value each sysctl starts at in a new namespace
 * (Documentation/contract.rst, "Loading"). Linux 6.12's Rust module! macro cannot declare
 * parameters, and module_param_named() is the kernel's own way to build their
 * struct kernel_param and modinfo strings, so they are declared here. Their values and
 * defaults are Rust statics, param!() in rust/sysctls.rs (a missing one fails at link time);
 * ranges are checked in Rust before anything is registered. 0444: read at load time only.
 */
#define ICMP_CT_PARAM(name, type, desc)                          \
	extern int icmp_ct_param_##name;                         \
	module_param_named(name, icmp_ct_param_##name, type, 0444); \
	MODULE_PARM_DESC(name, desc)

ICMP_CT_PARAM(icmp_timeout, int, "ip_ct_icmp_timeout of new namespaces, seconds (30)");
ICMP_CT_PARAM(icmpv6_timeout, int, "ip_ct_icmpv6_timeout of new namespaces, seconds (30)");
ICMP_CT_PARAM(udp_timeout, int, "ip_ct_udp_timeout of new namespaces, seconds (30)");
ICMP_CT_PARAM(udp_timeout_stream, int,
	      "ip_ct_udp_timeout_stream of new namespaces, seconds (180)");
ICMP_CT_PARAM(tcp_timeout_syn_sent, int,
	      "ip_ct_tcp_timeout_syn_sent of new namespaces, seconds (120)");
ICMP_CT_PARAM(tcp_timeout_syn_recv, int,
	      "ip_ct_tcp_timeout_syn_recv of new namespaces, seconds (60)");
ICMP_CT_PARAM(tcp_timeout_established, int,
	      "ip_ct_tcp_timeout_established of new namespaces, seconds (432000)");
ICMP_CT_PARAM(tcp_timeout_fin_wait, int,
	      "ip_ct_tcp_timeout_fin_wait of new namespaces, seconds (120)");
ICMP_CT_PARAM(tcp_timeout_time_wait, int,
	      "ip_ct_tcp_timeout_time_wait of new namespaces, seconds (120)");
ICMP_CT_PARAM(tcp_timeout_close, int, "ip_ct_tcp_timeout_close of new namespaces, seconds (10)");
ICMP_CT_PARAM(tcp_timeout_unacknowledged, int,
	      "ip_ct_tcp_timeout_unacknowledged of new namespaces, seconds (300)");
ICMP_CT_PARAM(generic_timeout, int, "ip_ct_generic_timeout of new namespaces, seconds (600)");
ICMP_CT_PARAM(tcp_loose, int, "ip_ct_tcp_loose of new namespaces: pick up TCP mid-stream (1)");
ICMP_CT_PARAM(keep_replied, int,
	      "ip_ct_icmp_keep_replied of new namespaces: keep replied ICMP entries (0)");
ICMP_CT_PARAM(checksum, int, "ip_ct_checksum of new namespaces: verify ICMP checksums (1)");
ICMP_CT_PARAM(drop_invalid, int, "ip_ct_drop_invalid of new namespaces (0)");
ICMP_CT_PARAM(drop_fragments, int, "ip_ct_drop_fragments of new namespaces (0)");
ICMP_CT_PARAM(mark_mask, uint, "ip_ct_mark_mask of new namespaces (0)");
ICMP_CT_PARAM(log_invalid, int, "ip_ct_log_invalid of new namespaces (0)");
ICMP_CT_PARAM(max_per_source, int,
	      "ip_ct_max_per_source of new namespaces: entries per source, 0 = no quota (0)");
