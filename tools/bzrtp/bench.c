/* bzrtp-bench: full ZRTP handshake time of Belledonne bzrtp, per side.
 *
 *   bzrtp-bench [--runs N] [--ka X255|DH3k|DH2k]...   (default: X255 and DH3k, 50 runs)
 *
 * Two bzrtp contexts live in this process; packets go through in-memory
 * queues and the clock handed to bzrtp_iterate is simulated, so no timer ever
 * fires for real and nothing is lost. Roles are fixed the same way the UDP
 * peer does it (the responder is never fed HelloACK, so only the initiator
 * commits and there is no commit contention): the measured flow is the plain
 * Hello/HelloACK/Commit/DHPart1/DHPart2/Confirm1/Confirm2/Conf2ACK exchange.
 *
 * A side's time is the wall time spent creating and initialising its context
 * (create, setCallbacks, setSupportedCryptoTypes, init: that builds the hash
 * chain and the Hello) and inside the bzrtp calls made on it afterwards
 * (startChannelEngine, iterate, processMessage) up to and including the call
 * in which it reported secure. per_side_ms = (initiator + responder) / 2.
 * tools/bench/_zrtp_ours.py measures our engine the same way.
 *
 * Output, one line per key agreement, the last fields machine-readable:
 *   bzrtp-bench ka=X255 runs=50 initiator_ms=0.301 responder_ms=0.288 per_side_ms=0.295
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "abi.h"

#define MAX_PACKET 3072
#define QUEUE_LEN 32
#define MAX_ROUNDS 1000
#define SIM_STEP_MS 10
#define MAX_RUNS 100000
#define MAX_KAS 4

typedef struct {
	uint16_t len;
	uint8_t data[MAX_PACKET];
} packet_t;

typedef struct side {
	bzrtpContext_t *ctx;
	uint32_t ssrc;
	packet_t out[QUEUE_LEN];
	int out_len;
	int overflow;
	int secure;
	int is_responder;
	uint8_t ka;
	char sas[64];
	uint8_t self_key[32];
	uint8_t peer_key[32];
	double busy_ms;
} side_t;

static double now_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cb_send(void *client, const uint8_t *pkt, uint16_t len) {
	side_t *s = (side_t *)client;
	if (len > MAX_PACKET || s->out_len >= QUEUE_LEN) {
		s->overflow = 1;
		return 0;
	}
	memcpy(s->out[s->out_len].data, pkt, len);
	s->out[s->out_len].len = len;
	s->out_len++;
	return 0;
}

static int cb_start_srtp(void *client, const bzrtpSrtpSecrets_t *sec, int32_t verified) {
	side_t *s = (side_t *)client;
	(void)verified;
	if (!abi_secrets_plausible(sec)) return 0;
	s->secure = 1;
	s->ka = sec->keyAgreementAlgo;
	snprintf(s->sas, sizeof s->sas, "%s", sec->sas);
	memcpy(s->self_key, sec->selfSrtpKey, sec->selfSrtpKeyLength);
	memcpy(s->peer_key, sec->peerSrtpKey, sec->peerSrtpKeyLength);
	return 0;
}

static int cb_secrets(void *client, const bzrtpSrtpSecrets_t *sec, uint8_t part) {
	(void)client; (void)sec; (void)part;
	return 0;
}

static int setup(side_t *s, uint32_t ssrc, uint8_t ka, int is_responder) {
	bzrtpCallbacks_t cbs;
	uint8_t kas[7] = {ka};
	const char *err;
	memset(s, 0, sizeof *s);
	s->ssrc = ssrc;
	s->is_responder = is_responder;
	s->ctx = bzrtp_createBzrtpContext();
	if (s->ctx == NULL) return -1;
	err = abi_runtime_check(s->ctx);
	if (err != NULL) {
		fprintf(stderr, "bzrtp-bench: %s\n", err);
		return -1;
	}
	memset(&cbs, 0, sizeof cbs);
	cbs.bzrtp_sendData = cb_send;
	cbs.bzrtp_srtpSecretsAvailable = cb_secrets;
	cbs.bzrtp_startSrtpSession = cb_start_srtp;
	bzrtp_setCallbacks(s->ctx, &cbs);
	bzrtp_setSupportedCryptoTypes(s->ctx, ZRTP_KEYAGREEMENT_TYPE, kas, 1);
	if (bzrtp_initBzrtpContext(s->ctx, ssrc) != 0) return -1;
	bzrtp_setClientData(s->ctx, ssrc, s);
	return 0;
}

static int is_type(const packet_t *p, const char *type) {
	return p->len >= 24 && memcmp(p->data + 16, type, 8) == 0;
}

/* One handshake; returns 0 and fills the per-side times, -1 on failure. */
static int handshake(uint8_t ka, double *init_ms, double *resp_ms) {
	static side_t a, b; /* a = initiator, b = responder */
	uint64_t sim = 1000;
	int round, ok = -1;
	double t0;
	int a_done = 0, b_done = 0;

	double ta, tb;
	t0 = now_ms();
	if (setup(&a, 0x11110000u, ka, 0) != 0) return -1;
	ta = now_ms() - t0;
	t0 = now_ms();
	if (setup(&b, 0x22220000u, ka, 1) != 0) return -1;
	tb = now_ms() - t0;
	a.busy_ms = ta; /* setup() zeroes the struct, so add afterwards */
	b.busy_ms = tb;

	t0 = now_ms(); bzrtp_startChannelEngine(a.ctx, a.ssrc); a.busy_ms += now_ms() - t0;
	t0 = now_ms(); bzrtp_startChannelEngine(b.ctx, b.ssrc); b.busy_ms += now_ms() - t0;

	for (round = 0; round < MAX_ROUNDS; round++) {
		int inner;
		if (!a_done) { t0 = now_ms(); bzrtp_iterate(a.ctx, a.ssrc, sim); a.busy_ms += now_ms() - t0; }
		else bzrtp_iterate(a.ctx, a.ssrc, sim);
		if (!b_done) { t0 = now_ms(); bzrtp_iterate(b.ctx, b.ssrc, sim); b.busy_ms += now_ms() - t0; }
		else bzrtp_iterate(b.ctx, b.ssrc, sim);
		for (inner = 0; inner < 64 && (a.out_len || b.out_len); inner++) {
			int i;
			packet_t batch[QUEUE_LEN];
			int n;
			/* a -> b */
			n = a.out_len;
			memcpy(batch, a.out, sizeof(packet_t) * (size_t)n);
			a.out_len = 0;
			for (i = 0; i < n; i++) {
				if (is_type(&batch[i], "HelloACK")) continue; /* b is the responder */
				t0 = now_ms();
				bzrtp_processMessage(b.ctx, b.ssrc, batch[i].data, batch[i].len);
				if (!b_done) b.busy_ms += now_ms() - t0;
				if (b.secure) b_done = 1;
			}
			/* b -> a */
			n = b.out_len;
			memcpy(batch, b.out, sizeof(packet_t) * (size_t)n);
			b.out_len = 0;
			for (i = 0; i < n; i++) {
				t0 = now_ms();
				bzrtp_processMessage(a.ctx, a.ssrc, batch[i].data, batch[i].len);
				if (!a_done) a.busy_ms += now_ms() - t0;
				if (a.secure) a_done = 1;
			}
		}
		if (a_done && b_done) { ok = 0; break; }
		sim += SIM_STEP_MS;
	}
	if (ok == 0) {
		if (a.ka != ka || b.ka != ka || strcmp(a.sas, b.sas) != 0 ||
		    memcmp(a.self_key, b.peer_key, 16) != 0 || memcmp(a.peer_key, b.self_key, 16) != 0) {
			fprintf(stderr, "bzrtp-bench: handshake disagreed (ka %s/%s, sas %s/%s)\n",
			        abi_ka_name(a.ka), abi_ka_name(b.ka), a.sas, b.sas);
			ok = -1;
		}
		if (a.overflow || b.overflow) ok = -1;
	}
	*init_ms = a.busy_ms;
	*resp_ms = b.busy_ms;
	bzrtp_destroyBzrtpContext(a.ctx, a.ssrc);
	bzrtp_destroyBzrtpContext(b.ctx, b.ssrc);
	return ok;
}

static int cmp_double(const void *x, const void *y) {
	double a = *(const double *)x, b = *(const double *)y;
	return (a > b) - (a < b);
}

static double median(double *v, int n) {
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return (n % 2) ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

int main(int argc, char **argv) {
	int runs = 50, i, k, nka = 0;
	uint8_t kas[MAX_KAS];
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
			runs = atoi(argv[++i]);
			if (runs < 1 || runs > MAX_RUNS) {
				fprintf(stderr, "bzrtp-bench: --runs must be 1..%d\n", MAX_RUNS);
				return 64;
			}
		} else if (strcmp(argv[i], "--ka") == 0 && i + 1 < argc) {
			uint8_t id = abi_ka_from_name(argv[++i]);
			if (id == 0 || nka >= MAX_KAS) {
				fprintf(stderr, "bzrtp-bench: --ka must be X255, DH3k, DH2k or X448 (at most %d)\n", MAX_KAS);
				return 64;
			}
			kas[nka++] = id;
		} else {
			fprintf(stderr, "usage: bzrtp-bench [--runs N] [--ka X255|DH3k|DH2k|X448]...\n");
			return 64;
		}
	}
	if (nka == 0) {
		kas[nka++] = ZRTP_KEYAGREEMENT_X255;
		kas[nka++] = ZRTP_KEYAGREEMENT_DH3k;
	}
	for (k = 0; k < nka; k++) {
		double *vi = calloc((size_t)runs, sizeof(double));
		double *vr = calloc((size_t)runs, sizeof(double));
		double *vs = calloc((size_t)runs, sizeof(double));
		double warm_i, warm_r;
		if (!vi || !vr || !vs) return 1;
		/* one warm-up run: first use pays for lazy library set-up */
		if (handshake(kas[k], &warm_i, &warm_r) != 0) {
			fprintf(stderr, "bzrtp-bench: %s handshake failed\n", abi_ka_name(kas[k]));
			return 1;
		}
		for (i = 0; i < runs; i++) {
			if (handshake(kas[k], &vi[i], &vr[i]) != 0) {
				fprintf(stderr, "bzrtp-bench: %s handshake failed\n", abi_ka_name(kas[k]));
				return 1;
			}
			vs[i] = (vi[i] + vr[i]) / 2.0;
		}
		printf("bzrtp-bench ka=%s runs=%d initiator_ms=%.3f responder_ms=%.3f per_side_ms=%.3f\n",
		       abi_ka_name(kas[k]), runs, median(vi, runs), median(vr, runs), median(vs, runs));
		fflush(stdout);
		free(vi); free(vr); free(vs);
	}
	return 0;
}
