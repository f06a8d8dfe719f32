/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A QEMU TCG plugin: guest instructions executed, per translated block start address.
 * Written for QEMU 7.2's plugin API (version 1); its few declarations are repeated here
 * since Debian ships no qemu-plugin.h. Usage:
 *   -plugin tb_profile.so,out=FILE
 * At exit FILE gets one line per address: "vaddr instructions".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
typedef struct qemu_info_t qemu_info_t;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*udata_cb_t)(qemu_plugin_id_t id, void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, tb_trans_cb_t cb);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op,
					      void *ptr, uint64_t imm);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, udata_cb_t cb, void *userdata);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

/* One per translation; a block translated again gets another. */
struct block {
	uint64_t vaddr;
	uint64_t insns; /* incremented by the block's size at each execution */
};

static struct block **blocks;
static size_t nblocks, cap;
static char *out_path;

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	struct block *b = calloc(1, sizeof(*b));

	if (!b)
		return;
	if (nblocks == cap) {
		size_t ncap = cap ? 2 * cap : 65536;
		struct block **nb = realloc(blocks, ncap * sizeof(*nb));

		if (!nb) {
			free(b);
			return;
		}
		blocks = nb;
		cap = ncap;
	}
	b->vaddr = qemu_plugin_tb_vaddr(tb);
	blocks[nblocks++] = b;
	qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &b->insns,
						 qemu_plugin_tb_n_insns(tb));
}

static int by_vaddr(const void *a, const void *b)
{
	uint64_t x = (*(struct block *const *)a)->vaddr, y = (*(struct block *const *)b)->vaddr;

	return x < y ? -1 : x > y;
}

static void at_exit(qemu_plugin_id_t id, void *userdata)
{
	FILE *f = fopen(out_path, "w");
	size_t i = 0;

	if (!f)
		return;
	qsort(blocks, nblocks, sizeof(*blocks), by_vaddr);
	while (i < nblocks) {
		uint64_t vaddr = blocks[i]->vaddr, sum = 0;

		for (; i < nblocks && blocks[i]->vaddr == vaddr; i++)
			sum += blocks[i]->insns;
		if (sum)
			fprintf(f, "%llx %llu\n", (unsigned long long)vaddr,
				(unsigned long long)sum);
	}
	fclose(f);
}

__attribute__((visibility("default"))) int
qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
	for (int i = 0; i < argc; i++)
		if (!strncmp(argv[i], "out=", 4))
			out_path = strdup(argv[i] + 4);
	if (!out_path) {
		fprintf(stderr, "tb_profile: out=FILE is required\n");
		return -1;
	}
	qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
	qemu_plugin_register_atexit_cb(id, at_exit, NULL);
	return 0;
}
