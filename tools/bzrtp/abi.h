/* Pinned bzrtp ABI for the interop peer and the benchmark.
 *
 * We build against Debian's libbzrtp-dev 5.1.x. Belledonne renumbered the
 * algorithm constants and grew bzrtpSrtpSecrets_t in 5.2, so a silent build
 * against another release would report wrong algorithm names or read garbage
 * keys. The Makefile refuses any pkg-config version other than 5.1.*, these
 * static asserts catch a mismatched header, and abi_runtime_check() catches a
 * mismatched shared library at start-up.
 */
#ifndef MW_BZRTP_ABI_H
#define MW_BZRTP_ABI_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <bzrtp/bzrtp.h>

#ifndef MW_BZRTP_PKG_VERSION
#define MW_BZRTP_PKG_VERSION "unknown"
#endif

/* Algorithm identifiers as numbered by bzrtp 5.1. */
_Static_assert(ZRTP_HASH_S256 == 0x11, "bzrtp 5.1 ABI: S256");
_Static_assert(ZRTP_HASH_S384 == 0x12, "bzrtp 5.1 ABI: S384");
_Static_assert(ZRTP_CIPHER_AES1 == 0x21, "bzrtp 5.1 ABI: AES1");
_Static_assert(ZRTP_CIPHER_AES3 == 0x23, "bzrtp 5.1 ABI: AES3");
_Static_assert(ZRTP_AUTHTAG_HS32 == 0x31, "bzrtp 5.1 ABI: HS32");
_Static_assert(ZRTP_AUTHTAG_HS80 == 0x32, "bzrtp 5.1 ABI: HS80");
_Static_assert(ZRTP_KEYAGREEMENT_DH2k == 0x41, "bzrtp 5.1 ABI: DH2k");
_Static_assert(ZRTP_KEYAGREEMENT_X255 == 0x42, "bzrtp 5.1 ABI: X255");
_Static_assert(ZRTP_KEYAGREEMENT_EC25 == 0x43, "bzrtp 5.1 ABI: EC25");
_Static_assert(ZRTP_KEYAGREEMENT_X448 == 0x44, "bzrtp 5.1 ABI: X448");
_Static_assert(ZRTP_KEYAGREEMENT_DH3k == 0x45, "bzrtp 5.1 ABI: DH3k");
_Static_assert(ZRTP_KEYAGREEMENT_Mult == 0x4f, "bzrtp 5.1 ABI: Mult");
_Static_assert(ZRTP_SAS_B32 == 0x51, "bzrtp 5.1 ABI: B32");
_Static_assert(ZRTP_SAS_B256 == 0x52, "bzrtp 5.1 ABI: B256");
_Static_assert(BZRTP_ROLE_INITIATOR == 0 && BZRTP_ROLE_RESPONDER == 1, "bzrtp 5.1 ABI: roles");

/* bzrtpSrtpSecrets_t layout of 5.1 on LP64 (x86_64, aarch64). */
#if defined(__LP64__)
_Static_assert(sizeof(bzrtpSrtpSecrets_t) == 80, "bzrtp 5.1 ABI: secrets size");
_Static_assert(offsetof(bzrtpSrtpSecrets_t, peerSrtpSalt) == 48, "bzrtp 5.1 ABI: peerSrtpSalt");
_Static_assert(offsetof(bzrtpSrtpSecrets_t, sas) == 64, "bzrtp 5.1 ABI: sas");
_Static_assert(offsetof(bzrtpSrtpSecrets_t, keyAgreementAlgo) == 74, "bzrtp 5.1 ABI: keyAgreementAlgo");
_Static_assert(offsetof(bzrtpSrtpSecrets_t, cacheMismatch) == 76, "bzrtp 5.1 ABI: cacheMismatch");
_Static_assert(sizeof(bzrtpCallbacks_t) == 48, "bzrtp 5.1 ABI: callbacks size");
#endif

static inline const char *abi_ka_name(uint8_t ka) {
	switch (ka) {
	case ZRTP_KEYAGREEMENT_DH2k: return "DH2k";
	case ZRTP_KEYAGREEMENT_X255: return "X255";
	case ZRTP_KEYAGREEMENT_EC25: return "EC25";
	case ZRTP_KEYAGREEMENT_X448: return "X448";
	case ZRTP_KEYAGREEMENT_DH3k: return "DH3k";
	case ZRTP_KEYAGREEMENT_EC38: return "EC38";
	case ZRTP_KEYAGREEMENT_EC52: return "EC52";
	case ZRTP_KEYAGREEMENT_Prsh: return "Prsh";
	case ZRTP_KEYAGREEMENT_Mult: return "Mult";
	default: return "?";
	}
}

static inline const char *abi_algo_name(uint8_t id) {
	switch (id) {
	case ZRTP_HASH_S256: return "S256";
	case ZRTP_HASH_S384: return "S384";
	case ZRTP_CIPHER_AES1: return "AES1";
	case ZRTP_CIPHER_AES3: return "AES3";
	case ZRTP_AUTHTAG_HS32: return "HS32";
	case ZRTP_AUTHTAG_HS80: return "HS80";
	case ZRTP_SAS_B32: return "B32";
	case ZRTP_SAS_B256: return "B256";
	default: return abi_ka_name(id);
	}
}

/* Returns the bzrtp id for a hash/cipher/auth/SAS name of the given type, 0 if unknown. */
static inline uint8_t abi_algo_from_name(uint8_t type, const char *name) {
	static const struct { uint8_t type, id; const char *name; } table[] = {
		{ZRTP_HASH_TYPE, ZRTP_HASH_S256, "S256"}, {ZRTP_HASH_TYPE, ZRTP_HASH_S384, "S384"},
		{ZRTP_CIPHERBLOCK_TYPE, ZRTP_CIPHER_AES1, "AES1"}, {ZRTP_CIPHERBLOCK_TYPE, ZRTP_CIPHER_AES3, "AES3"},
		{ZRTP_AUTHTAG_TYPE, ZRTP_AUTHTAG_HS32, "HS32"}, {ZRTP_AUTHTAG_TYPE, ZRTP_AUTHTAG_HS80, "HS80"},
		{ZRTP_SAS_TYPE, ZRTP_SAS_B32, "B32"}, {ZRTP_SAS_TYPE, ZRTP_SAS_B256, "B256"},
	};
	size_t i;
	for (i = 0; i < sizeof table / sizeof table[0]; i++) {
		if (table[i].type == type && strcmp(table[i].name, name) == 0) return table[i].id;
	}
	return 0;
}

/* Returns the bzrtp id for a key agreement name, 0 if unknown. */
static inline uint8_t abi_ka_from_name(const char *name) {
	if (strcmp(name, "X255") == 0) return ZRTP_KEYAGREEMENT_X255;
	if (strcmp(name, "DH3k") == 0) return ZRTP_KEYAGREEMENT_DH3k;
	if (strcmp(name, "DH2k") == 0) return ZRTP_KEYAGREEMENT_DH2k;
	if (strcmp(name, "X448") == 0) return ZRTP_KEYAGREEMENT_X448;
	return 0;
}

/* The shared library behind the header must number its default offers the
 * 5.1 way: the key agreement list holds X255 and DH3k, the SAS list B32.
 * A 5.2+ library renumbered these, so this fails there. Returns NULL when
 * fine, else a reason. */
static inline const char *abi_runtime_check(bzrtpContext_t *ctx) {
	uint8_t types[7];
	uint8_t n, i;
	int have_x255 = 0, have_dh3k = 0, have_b32 = 0;

	n = bzrtp_getSupportedCryptoTypes(ctx, ZRTP_KEYAGREEMENT_TYPE, types);
	for (i = 0; i < n && i < 7; i++) {
		if (types[i] == ZRTP_KEYAGREEMENT_X255) have_x255 = 1;
		if (types[i] == ZRTP_KEYAGREEMENT_DH3k) have_dh3k = 1;
	}
	n = bzrtp_getSupportedCryptoTypes(ctx, ZRTP_SAS_TYPE, types);
	for (i = 0; i < n && i < 7; i++) {
		if (types[i] == ZRTP_SAS_B32) have_b32 = 1;
	}
	if (!have_dh3k || !have_b32) return "bzrtp_abi: default offers not numbered as in 5.1";
	if (!have_x255) return "bzrtp_abi: library built without X255";
	return NULL;
}

/* A secrets struct read with the wrong layout shows implausible lengths. */
static inline int abi_secrets_plausible(const bzrtpSrtpSecrets_t *s) {
	if (s->selfSrtpKey == NULL || s->peerSrtpKey == NULL || s->sas == NULL) return 0;
	if (s->selfSrtpKeyLength != 16 && s->selfSrtpKeyLength != 32) return 0;
	if (s->selfSrtpSaltLength != 14 || s->peerSrtpSaltLength != 14) return 0;
	if (s->peerSrtpKeyLength != s->selfSrtpKeyLength) return 0;
	/* sasLength is the buffer size (5 for B32, 32 for B256): the string must end inside it */
	if (s->sasLength < 5 || strnlen(s->sas, s->sasLength) >= s->sasLength || strlen(s->sas) < 4) return 0;
	return 1;
}

#endif
