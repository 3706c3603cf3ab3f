/* bzrtp-peer: a real Belledonne bzrtp endpoint over UDP on 127.0.0.1.
 *
 * Same command line and JSON lines as `tools/microwitch zrtp-peer`, so the
 * interop tests can run either program on either side:
 *
 *   bzrtp-peer --local PORT --peer PORT [--ka X255|DH3k|DH2k]
 *              [--role initiator|responder|auto] [--cache FILE]
 *              [--peer-hash "1.10 <hex>"] [--timeout-ms N] [--linger-ms N]
 *              [--hash S256|S384] [--cipher AES1|AES3] [--auth HS32|HS80] [--sas B32|B256]
 *   bzrtp-peer --version | --help
 *
 * stdout, one JSON object per line:
 *   {"event":"hello_hash","value":"1.10 <hex>"}
 *   {"event":"secure","role":..,"ka":..,"sas":..,"self_key":hex,"self_salt":hex,
 *    "peer_key":hex,"peer_salt":hex,"cache":"match"|"new"|"mismatch","rs1":hex|null,
 *    "verified":bool,"hash":..,"cipher":..,"auth":..,"sas_type":..}
 *     then exit 0 after lingering (default 300 ms) to answer retransmissions;
 *   {"event":"failed","reason":..,"code":"0x...."}  then exit 2.
 * Usage errors exit 64. A per-packet trace goes to stderr.
 *
 * --ka/--hash/--cipher/--auth/--sas put that algorithm alone in bzrtp's offer;
 * bzrtp appends its mandatory ones (DH3k, S256, AES1, HS32+HS80, B32) itself.
 *
 * "rs1" is the retained secret stored in bzrtp's ZID cache for this peer once
 * the session is secure, i.e. the new rs1 derived from this session's s0
 * (RFC 6189 section 4.6.1). It is null without --cache, and after a cache
 * mismatch bzrtp keeps the old one until the SAS is verified.
 *
 * Roles. bzrtp decides its role by itself: it commits as soon as it has the
 * peer's Hello and a HelloACK for its own, and yields to a Commit that
 * arrives first (commit contention, RFC 6189 section 4.2, is settled by hvi,
 * which nobody controls). To pin a role we filter what bzrtp is fed:
 *   responder: incoming HelloACKs are withheld, so bzrtp's Hello can only be
 *              acknowledged by the peer's Commit (section 4.1 lets a Commit
 *              stand for the HelloACK) and bzrtp never commits itself;
 *   initiator: incoming Commits are withheld until bzrtp has sent its own, so
 *              it never yields to an early Commit. Against a peer that also
 *              insists on initiating, hvi still decides; the JSON reports the
 *              role actually taken (from whether we sent DHPart2 or DHPart1).
 *   auto:      nothing is filtered.
 *
 * bzrtp is never re-entered from its callbacks: sendData only queues.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <sqlite3.h>

#include "abi.h"

#define EXIT_SECURE 0
#define EXIT_FAILED 2
#define EXIT_USAGE 64

/* Bounds. A ZRTP packet is at most ~1.2 KB (DHPart with DH3k); 3 KB leaves
 * room. bzrtp sends at most a couple of packets per call, so 32 is plenty. */
#define MAX_PACKET 3072
#define SEND_QUEUE_LEN 32
#define POLL_STEP_MS 5

#define ZRTP_HEADER_LEN 12
#define ZRTP_TYPE_OFFSET (ZRTP_HEADER_LEN + 4)
#define HELLO_ZID_OFFSET (ZRTP_HEADER_LEN + 2 + 2 + 8 + 4 + 16 + 32)

#define SELF_URI "sip:self@microwitch.invalid"
#define PEER_URI "sip:peer@microwitch.invalid"

enum role_pref { ROLE_AUTO, ROLE_INITIATOR, ROLE_RESPONDER };

/* error classes remembered for the failure reason */
#define SEEN_BAD_CRC 0x01
#define SEEN_CONFIRM_MAC 0x02
#define SEEN_HELLO_HASH 0x04

typedef struct {
	uint16_t len;
	uint8_t data[MAX_PACKET];
} queued_packet_t;

typedef struct {
	queued_packet_t queue[SEND_QUEUE_LEN];
	int queue_len;
	int queue_dropped;

	int sent_commit;
	int sent_dhpart1;
	int sent_dhpart2;

	int secure;
	uint8_t self_key[32], self_salt[14], peer_key[32], peer_salt[14];
	int key_len;
	char sas[64];
	uint8_t ka, hash, cipher, auth, sas_type;
	int verified;
	int cache_mismatch;
	int abi_error;
} peer_state_t;

static uint64_t now_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void packet_type(const uint8_t *pkt, size_t len, char out[9]) {
	if (len >= ZRTP_TYPE_OFFSET + 8) {
		size_t i;
		memcpy(out, pkt + ZRTP_TYPE_OFFSET, 8);
		for (i = 0; i < 8; i++) {
			if (out[i] < 0x20 || out[i] > 0x7e) out[i] = '?';
		}
	} else {
		memcpy(out, "(short) ", 8);
	}
	out[8] = '\0';
}

static void hex(const uint8_t *b, size_t n, char *out) {
	static const char digits[] = "0123456789abcdef";
	size_t i;
	for (i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

/* JSON string body: our values are ASCII (SAS words, reasons), escape the rest. */
static void json_str(FILE *f, const char *s) {
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
		else if (c < 0x20 || c > 0x7e) fprintf(f, "\\u%04x", c);
		else fputc(c, f);
	}
	fputc('"', f);
}

/* ---- callbacks: record and queue only ---- */

static int cb_send(void *client, const uint8_t *pkt, uint16_t len) {
	peer_state_t *st = (peer_state_t *)client;
	char type[9];
	packet_type(pkt, len, type);
	if (strcmp(type, "Commit  ") == 0) st->sent_commit = 1;
	if (strcmp(type, "DHPart1 ") == 0) st->sent_dhpart1 = 1;
	if (strcmp(type, "DHPart2 ") == 0) st->sent_dhpart2 = 1;
	if (len > MAX_PACKET || st->queue_len >= SEND_QUEUE_LEN) {
		st->queue_dropped++;
		return 0; /* behaves like a lost packet; timers recover */
	}
	memcpy(st->queue[st->queue_len].data, pkt, len);
	st->queue[st->queue_len].len = len;
	st->queue_len++;
	return 0;
}

static int cb_secrets_available(void *client, const bzrtpSrtpSecrets_t *s, uint8_t part) {
	(void)client; (void)s; (void)part;
	return 0;
}

static int cb_start_srtp(void *client, const bzrtpSrtpSecrets_t *s, int32_t verified) {
	peer_state_t *st = (peer_state_t *)client;
	if (!abi_secrets_plausible(s)) {
		fprintf(stderr, "bzrtp-peer: secrets struct implausible: key %u/%u salt %u/%u sas buffer %u\n",
		        s->selfSrtpKeyLength, s->peerSrtpKeyLength, s->selfSrtpSaltLength, s->peerSrtpSaltLength,
		        s->sasLength);
		st->abi_error = 1;
		return 0;
	}
	st->key_len = s->selfSrtpKeyLength;
	memcpy(st->self_key, s->selfSrtpKey, s->selfSrtpKeyLength);
	memcpy(st->peer_key, s->peerSrtpKey, s->peerSrtpKeyLength);
	memcpy(st->self_salt, s->selfSrtpSalt, 14);
	memcpy(st->peer_salt, s->peerSrtpSalt, 14);
	snprintf(st->sas, sizeof st->sas, "%s", s->sas);
	st->ka = s->keyAgreementAlgo;
	st->hash = s->hashAlgo;
	st->cipher = s->cipherAlgo;
	st->auth = s->authTagAlgo;
	st->sas_type = s->sasAlgo;
	st->verified = verified ? 1 : 0;
	st->cache_mismatch = s->cacheMismatch;
	st->secure = 1;
	return 0;
}

static int cb_status(void *client, const uint8_t level, const uint8_t id, const char *msg) {
	(void)client;
	fprintf(stderr, "bzrtp-peer: status level=%u id=%u %s\n", level, id, msg ? msg : "");
	return 0;
}

/* ---- ZID cache look-ups (read-only, bzrtp owns the writes) ---- */

/* Copies the rs1 stored for this peer ZID into out; returns its length, 0 if none. */
static int cache_rs1(sqlite3 *db, const uint8_t zid[12], uint8_t *out, int cap) {
	sqlite3_stmt *stmt = NULL;
	int n = 0;
	const char *sql = "SELECT z.rs1 FROM ziduri AS zu INNER JOIN zrtp AS z ON z.zuid = zu.zuid "
	                  "WHERE zu.selfuri = ? AND zu.peeruri = ? AND zu.zid = ? ORDER BY zu.zuid LIMIT 1;";
	if (db == NULL) return 0;
	if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK) return 0;
	sqlite3_bind_text(stmt, 1, SELF_URI, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, PEER_URI, -1, SQLITE_STATIC);
	sqlite3_bind_blob(stmt, 3, zid, 12, SQLITE_STATIC);
	if (sqlite3_step(stmt) == SQLITE_ROW) {
		n = sqlite3_column_bytes(stmt, 0);
		if (n > cap) n = cap;
		if (n > 0) memcpy(out, sqlite3_column_blob(stmt, 0), (size_t)n);
	}
	sqlite3_finalize(stmt);
	return n;
}

static void usage(FILE *f) {
	fprintf(f,
	        "usage: bzrtp-peer --local PORT --peer PORT [--ka X255|DH3k|DH2k] "
	        "[--role initiator|responder|auto] [--cache FILE] [--peer-hash \"1.10 <hex>\"] "
	        "[--timeout-ms N] [--linger-ms N] [--hash S256|S384] [--cipher AES1|AES3] [--auth HS32|HS80] "
	        "[--sas B32|B256]\n       bzrtp-peer --version | --help\n");
}

static int parse_port(const char *s, const char *field) {
	char *end = NULL;
	long v = strtol(s, &end, 10);
	if (end == s || *end != '\0' || v < 1 || v > 65535) {
		fprintf(stderr, "bzrtp-peer: %s must be a port number 1..65535, got '%s'\n", field, s);
		exit(EXIT_USAGE);
	}
	return (int)v;
}

static long parse_ms(const char *s, const char *field) {
	char *end = NULL;
	long v = strtol(s, &end, 10);
	if (end == s || *end != '\0' || v < 0 || v > 3600000) {
		fprintf(stderr, "bzrtp-peer: %s must be milliseconds 0..3600000, got '%s'\n", field, s);
		exit(EXIT_USAGE);
	}
	return v;
}

static void print_failed(const char *reason, int code) {
	printf("{\"event\":\"failed\",\"reason\":");
	json_str(stdout, reason);
	printf(",\"code\":\"0x%04x\"}\n", (unsigned)code);
	fflush(stdout);
}

int main(int argc, char **argv) {
	static peer_state_t st;
	int local_port = 0, peer_port = 0;
	const char *ka_name = NULL, *cache_path = NULL, *peer_hash = NULL;
	enum role_pref role = ROLE_AUTO;
	long timeout_ms = 15000, linger_ms = 300;
	static const struct option opts[] = {
		{"local", required_argument, 0, 'l'},
		{"peer", required_argument, 0, 'p'},
		{"ka", required_argument, 0, 'k'},
		{"role", required_argument, 0, 'r'},
		{"cache", required_argument, 0, 'c'},
		{"peer-hash", required_argument, 0, 'h'},
		{"timeout-ms", required_argument, 0, 't'},
		{"linger-ms", required_argument, 0, 'g'},
		{"version", no_argument, 0, 'V'},
		{"help", no_argument, 0, 'H'},
		{"hash", required_argument, 0, '1'},
		{"cipher", required_argument, 0, '2'},
		{"auth", required_argument, 0, '3'},
		{"sas", required_argument, 0, '4'},
		{0, 0, 0, 0},
	};
	int c;
	uint8_t ka_id = 0;
	/* hash, cipher, auth, SAS: the one algorithm to offer first, 0 = bzrtp's defaults */
	static const uint8_t algo_types[4] = {ZRTP_HASH_TYPE, ZRTP_CIPHERBLOCK_TYPE, ZRTP_AUTHTAG_TYPE, ZRTP_SAS_TYPE};
	static const char *const algo_opts[4] = {"--hash", "--cipher", "--auth", "--sas"};
	uint8_t algo_ids[4] = {0, 0, 0, 0};
	uint32_t ssrc;
	bzrtpContext_t *ctx;
	bzrtpCallbacks_t cbs;
	sqlite3 *db = NULL;
	int sock;
	struct sockaddr_in local_addr, peer_addr;
	uint8_t hello_hash[128];
	const char *abi_err;
	uint64_t start, deadline, linger_until = 0;
	int last_error = 0, seen = 0, printed_secure = 0;
	int have_peer_zid = 0, had_rs1 = 0;
	uint8_t peer_zid[12];
	uint8_t rxbuf[MAX_PACKET + 1];

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'l': local_port = parse_port(optarg, "--local"); break;
		case 'p': peer_port = parse_port(optarg, "--peer"); break;
		case 'k': ka_name = optarg; break;
		case 'r':
			if (strcmp(optarg, "initiator") == 0) role = ROLE_INITIATOR;
			else if (strcmp(optarg, "responder") == 0) role = ROLE_RESPONDER;
			else if (strcmp(optarg, "auto") == 0) role = ROLE_AUTO;
			else {
				fprintf(stderr, "bzrtp-peer: --role must be initiator, responder or auto, got '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'c': cache_path = optarg; break;
		case 'h': peer_hash = optarg; break;
		case 't': timeout_ms = parse_ms(optarg, "--timeout-ms"); break;
		case 'g': linger_ms = parse_ms(optarg, "--linger-ms"); break;
		case 'V':
			printf("bzrtp-peer built against libbzrtp %s (5.1 ABI: X255=0x%02x DH3k=0x%02x DH2k=0x%02x B32=0x%02x)\n",
			       MW_BZRTP_PKG_VERSION, ZRTP_KEYAGREEMENT_X255, ZRTP_KEYAGREEMENT_DH3k,
			       ZRTP_KEYAGREEMENT_DH2k, ZRTP_SAS_B32);
			return 0;
		case 'H': usage(stdout); return 0;
		case '1': case '2': case '3': case '4': {
			int k = c - '1';
			algo_ids[k] = abi_algo_from_name(algo_types[k], optarg);
			if (algo_ids[k] == 0) {
				fprintf(stderr, "bzrtp-peer: %s does not accept '%s'\n", algo_opts[k], optarg);
				return EXIT_USAGE;
			}
			break;
		}
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc || local_port == 0 || peer_port == 0) {
		fprintf(stderr, "bzrtp-peer: --local and --peer are required\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	if (ka_name != NULL) {
		ka_id = abi_ka_from_name(ka_name);
		if (ka_id == 0 || ka_id == ZRTP_KEYAGREEMENT_X448) {
			fprintf(stderr, "bzrtp-peer: --ka must be X255, DH3k or DH2k, got '%s'\n", ka_name);
			return EXIT_USAGE;
		}
	}
	if (peer_hash != NULL && strlen(peer_hash) < 64) {
		fprintf(stderr, "bzrtp-peer: --peer-hash must be \"1.10 <64 hex digits>\"\n");
		return EXIT_USAGE;
	}

	/* socket first: a bind failure is a usage problem, report before any JSON */
	sock = socket(AF_INET, SOCK_DGRAM, 0);
	if (sock < 0) { perror("bzrtp-peer: socket"); return EXIT_USAGE; }
	memset(&local_addr, 0, sizeof local_addr);
	local_addr.sin_family = AF_INET;
	local_addr.sin_port = htons((uint16_t)local_port);
	local_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(sock, (struct sockaddr *)&local_addr, sizeof local_addr) != 0) {
		fprintf(stderr, "bzrtp-peer: cannot bind 127.0.0.1:%d: %s\n", local_port, strerror(errno));
		return EXIT_USAGE;
	}
	fcntl(sock, F_SETFL, fcntl(sock, F_GETFL) | O_NONBLOCK);
	memset(&peer_addr, 0, sizeof peer_addr);
	peer_addr.sin_family = AF_INET;
	peer_addr.sin_port = htons((uint16_t)peer_port);
	peer_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

	ssrc = 0x4d570000u | (uint32_t)local_port;
	ctx = bzrtp_createBzrtpContext();
	if (ctx == NULL) { print_failed("bzrtp_create", 0); return EXIT_FAILED; }
	abi_err = abi_runtime_check(ctx);
	if (abi_err != NULL) { print_failed(abi_err, 0); return EXIT_FAILED; }

	memset(&cbs, 0, sizeof cbs);
	cbs.bzrtp_statusMessage = cb_status;
	cbs.bzrtp_messageLevel = BZRTP_MESSAGE_WARNING;
	cbs.bzrtp_sendData = cb_send;
	cbs.bzrtp_srtpSecretsAvailable = cb_secrets_available;
	cbs.bzrtp_startSrtpSession = cb_start_srtp;
	bzrtp_setCallbacks(ctx, &cbs);

	if (ka_id != 0) {
		/* bzrtp re-adds its mandatory DH3k after this list */
		uint8_t kas[7] = {ka_id};
		bzrtp_setSupportedCryptoTypes(ctx, ZRTP_KEYAGREEMENT_TYPE, kas, 1);
	}
	for (c = 0; c < 4; c++) {
		if (algo_ids[c] != 0) {
			uint8_t one[7] = {algo_ids[c]};
			bzrtp_setSupportedCryptoTypes(ctx, algo_types[c], one, 1);
		}
	}
	if (cache_path != NULL) {
		int ret;
		if (sqlite3_open(cache_path, &db) != SQLITE_OK) {
			fprintf(stderr, "bzrtp-peer: cannot open cache '%s': %s\n", cache_path, sqlite3_errmsg(db));
			return EXIT_USAGE;
		}
		ret = bzrtp_setZIDCache(ctx, db, SELF_URI, PEER_URI);
		if (ret != 0 && ret != BZRTP_CACHE_SETUP && ret != BZRTP_CACHE_UPDATE) {
			print_failed("zid_cache", ret);
			return EXIT_FAILED;
		}
	}
	if (bzrtp_initBzrtpContext(ctx, ssrc) != 0) { print_failed("bzrtp_init", 0); return EXIT_FAILED; }
	bzrtp_setClientData(ctx, ssrc, &st);
	if (peer_hash != NULL) {
		int ret = bzrtp_setPeerHelloHash(ctx, ssrc, (uint8_t *)peer_hash, strlen(peer_hash));
		if (ret != 0) {
			fprintf(stderr, "bzrtp-peer: --peer-hash rejected by bzrtp (0x%04x)\n", (unsigned)ret);
			return EXIT_USAGE;
		}
	}
	memset(hello_hash, 0, sizeof hello_hash);
	if (bzrtp_getSelfHelloHash(ctx, ssrc, hello_hash, sizeof hello_hash) != 0) {
		print_failed("hello_hash", 0);
		return EXIT_FAILED;
	}
	printf("{\"event\":\"hello_hash\",\"value\":");
	json_str(stdout, (const char *)hello_hash);
	printf("}\n");
	fflush(stdout);

	if (bzrtp_startChannelEngine(ctx, ssrc) != 0) { print_failed("bzrtp_start", 0); return EXIT_FAILED; }

	start = now_ms();
	deadline = start + (uint64_t)timeout_ms;
	for (;;) {
		uint64_t now = now_ms();
		struct pollfd pfd;
		int i;

		bzrtp_iterate(ctx, ssrc, now);

		for (i = 0; i < st.queue_len; i++) {
			char type[9];
			packet_type(st.queue[i].data, st.queue[i].len, type);
			fprintf(stderr, "bzrtp-peer: tx %s %u bytes\n", type, st.queue[i].len);
			/* loopback UDP: an unbound peer port is just a lost packet */
			sendto(sock, st.queue[i].data, st.queue[i].len, 0, (struct sockaddr *)&peer_addr, sizeof peer_addr);
		}
		st.queue_len = 0;

		if (st.secure && !printed_secure) {
			char k1[65], s1[29], k2[65], s2[29], rs1hex[129];
			uint8_t rs1[64];
			int rs1_len = have_peer_zid ? cache_rs1(db, peer_zid, rs1, sizeof rs1) : 0;
			const char *cache;
			if (st.cache_mismatch) cache = "mismatch";
			else if (db != NULL && had_rs1) cache = "match";
			else cache = "new";
			hex(st.self_key, (size_t)st.key_len, k1);
			hex(st.self_salt, 14, s1);
			hex(st.peer_key, (size_t)st.key_len, k2);
			hex(st.peer_salt, 14, s2);
			printf("{\"event\":\"secure\",\"role\":\"%s\",\"ka\":\"%s\",\"sas\":",
			       st.sent_dhpart2 ? "initiator" : "responder", abi_ka_name(st.ka));
			json_str(stdout, st.sas);
			printf(",\"self_key\":\"%s\",\"self_salt\":\"%s\",\"peer_key\":\"%s\",\"peer_salt\":\"%s\","
			       "\"cache\":\"%s\",\"rs1\":",
			       k1, s1, k2, s2, cache);
			if (rs1_len > 0) {
				hex(rs1, (size_t)rs1_len, rs1hex);
				printf("\"%s\"", rs1hex);
			} else {
				printf("null");
			}
			printf(",\"verified\":%s,\"hash\":\"%s\",\"cipher\":\"%s\",\"auth\":\"%s\",\"sas_type\":\"%s\"}\n",
			       st.verified ? "true" : "false", abi_algo_name(st.hash), abi_algo_name(st.cipher),
			       abi_algo_name(st.auth), abi_algo_name(st.sas_type));
			fflush(stdout);
			printed_secure = 1;
			linger_until = now + (uint64_t)linger_ms;
		}
		if (printed_secure && now >= linger_until) break;
		if (st.abi_error) {
			print_failed("bzrtp_abi: secrets struct does not have the 5.1 layout", 0);
			return EXIT_FAILED;
		}
		if (!printed_secure && now >= deadline) {
			const char *reason = "timeout";
			if (seen & SEEN_HELLO_HASH) reason = "hello_hash_mismatch";
			else if (seen & SEEN_CONFIRM_MAC) reason = "confirm_mac";
			else if (seen & SEEN_BAD_CRC) reason = "bad_crc";
			print_failed(reason, last_error);
			bzrtp_destroyBzrtpContext(ctx, ssrc);
			if (db) sqlite3_close(db);
			return EXIT_FAILED;
		}

		pfd.fd = sock;
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (poll(&pfd, 1, POLL_STEP_MS) <= 0) continue;

		for (;;) {
			ssize_t n = recv(sock, rxbuf, sizeof rxbuf, 0);
			char type[9];
			int ret;
			if (n < 0) break; /* EAGAIN, or an ICMP error from an unbound peer */
			if (n > MAX_PACKET) {
				fprintf(stderr, "bzrtp-peer: rx oversized datagram dropped\n");
				continue;
			}
			packet_type(rxbuf, (size_t)n, type);
			if (role == ROLE_RESPONDER && strcmp(type, "HelloACK") == 0) {
				fprintf(stderr, "bzrtp-peer: rx %s withheld (responder)\n", type);
				continue;
			}
			if (role == ROLE_INITIATOR && !st.sent_commit && strcmp(type, "Commit  ") == 0) {
				fprintf(stderr, "bzrtp-peer: rx %s withheld (initiator)\n", type);
				continue;
			}
			if (!have_peer_zid && strcmp(type, "Hello   ") == 0 && n >= HELLO_ZID_OFFSET + 12) {
				/* look at the cache before bzrtp rotates rs1 */
				uint8_t tmp[64];
				memcpy(peer_zid, rxbuf + HELLO_ZID_OFFSET, 12);
				have_peer_zid = 1;
				had_rs1 = cache_rs1(db, peer_zid, tmp, sizeof tmp) > 0;
			}
			ret = bzrtp_processMessage(ctx, ssrc, rxbuf, (uint16_t)n);
			fprintf(stderr, "bzrtp-peer: rx %s %zd bytes -> 0x%04x\n", type, n, (unsigned)ret);
			if (ret != 0) {
				last_error = ret;
				if (ret == 0xa001) seen |= SEEN_BAD_CRC;
				if (ret == 0xa020) seen |= SEEN_CONFIRM_MAC;
				if (ret == BZRTP_ERROR_HELLOHASH_MISMATCH) seen |= SEEN_HELLO_HASH;
			}
		}
	}

	bzrtp_destroyBzrtpContext(ctx, ssrc);
	if (db) sqlite3_close(db);
	close(sock);
	return EXIT_SECURE;
}
