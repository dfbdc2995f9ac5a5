/* bin/tokens: the administrator's CLI over the certificate database, PKCS#11
 * tokens, CRLs and modules. Sub-commands live in tokens/cmd_*.c.
 *
 * SECURITY: run by the administrator (usually root) on the certdb that the
 * daemons read. It holds the internal token's passphrase and token PINs only
 * while it runs; secrets come from the -W / -O files or a no-echo prompt on
 * /dev/tty, never from argv, and are never printed or logged. Every certdb
 * write is atomic (certdb.h). It parses no network input. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>

#include "config.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "tokens/tokens.h"

static const struct tokens_cmd *const tables[] = {
	tokens_cmds_certdb, tokens_cmds_cert, tokens_cmds_request, tokens_cmds_pkcs12,
	tokens_cmds_crl, tokens_cmds_module, tokens_cmds_token, NULL,
};

static const char common_help[] =
	"Common options:\n"
	"  -d CERTDB              certificate database [" SP_SYSCONFDIR "/certdb]\n"
	"  -W FILE                sslpassword.conf-format file (\"Token name:secret\" lines)\n"
	"                         [CERTDB/../sslpassword.conf]\n"
	"  --token LABEL          act on the PKCS#11 token LABEL (default: internal token)\n"
	"  --module LIBPATH       also load this PKCS#11 module\n"
	"  --modules-file FILE    module list [CERTDB/../pkcs11-modules.conf]\n"
	"  --no-p11kit            do not load the modules p11-kit's registry names\n"
	"  --help                 this text (per sub-command: tokens SUBCMD --help)\n";

static const char exit_help[] =
	"Exit codes: 0 ok, 1 usage, 2 not found (nickname, token, module, file),\n"
	"  3 wrong or missing password/PIN, 4 PKCS#11 token or module error,\n"
	"  5 refused (key mismatch, key not extractable, exists, older CRL, bad signature),\n"
	"  6 other failure (I/O, certdb, OpenSSL).\n"
	"Running daemons read changes on SIGHUP.\n";

static void usage_all(FILE *out)
{
	fprintf(out, "Usage: tokens SUBCMD [options] [arguments]\n\nSub-commands:\n");
	for (size_t t = 0; tables[t] != NULL; t++)
		for (const struct tokens_cmd *c = tables[t]; c->name != NULL; c++)
			fprintf(out, "  %s\n", c->name);
	fprintf(out, "\n%s\n%s", common_help, exit_help);
}

static void usage_cmd(FILE *out, const struct tokens_cmd *c)
{
	fprintf(out, "Usage: tokens %s\n\n%s\n%s", c->usage, common_help, exit_help);
}

static const struct tokens_cmd *find_cmd(const char *name)
{
	for (size_t t = 0; tables[t] != NULL; t++)
		for (const struct tokens_cmd *c = tables[t]; c->name != NULL; c++)
			if (strcmp(c->name, name) == 0)
				return c;
	return NULL;
}

enum {
	L_TOKEN = 256, L_MODULE, L_MODFILE, L_NAME, L_ORG, L_OU, L_CITY, L_STATE, L_COUNTRY,
	L_SAN, L_DAYS, L_KEY, L_TRUST, L_LABEL, L_NEWPIN, L_NOP11KIT, L_FORCE, L_HELP,
};

static const struct option longopts[] = {
	{"token", required_argument, NULL, L_TOKEN},
	{"module", required_argument, NULL, L_MODULE},
	{"modules-file", required_argument, NULL, L_MODFILE},
	{"name", required_argument, NULL, L_NAME},
	{"org", required_argument, NULL, L_ORG},
	{"org-unit", required_argument, NULL, L_OU},
	{"city", required_argument, NULL, L_CITY},
	{"state", required_argument, NULL, L_STATE},
	{"country", required_argument, NULL, L_COUNTRY},
	{"san", required_argument, NULL, L_SAN},
	{"days", required_argument, NULL, L_DAYS},
	{"key", required_argument, NULL, L_KEY},
	{"trust", required_argument, NULL, L_TRUST},
	{"label", required_argument, NULL, L_LABEL},
	{"new-pin-file", required_argument, NULL, L_NEWPIN},
	{"no-p11kit", no_argument, NULL, L_NOP11KIT},
	{"force", no_argument, NULL, L_FORCE},
	{"help", no_argument, NULL, L_HELP},
	{NULL, 0, NULL, 0},
};

/* Parses argv after the sub-command; 0 ok, 1 usage error, 2 --help. */
static int parse(int argc, char **argv, const struct tokens_cmd *c, struct tokens_args *a)
{
	int ch;

	opterr = 0;
	optind = 1;
	while ((ch = getopt_long(argc, argv, ":d:W:O:o:F:CS:n:", longopts, NULL)) != -1) {
		unsigned bit = 0;

		switch (ch) {
		case 'd': a->db = optarg; bit = TO_DB; break;
		case 'W': a->pwfile = optarg; bit = TO_PWFILE; break;
		case 'O': a->p12pass_file = optarg; bit = TO_P12PASS; break;
		case 'o': a->out = optarg; bit = TO_OUT; break;
		case 'F':
			if (strcmp(optarg, "ascii") != 0 && strcmp(optarg, "binary") != 0) {
				tok_fail(TOK_EUSAGE, "-F takes ascii or binary");
				return 1;
			}
			a->ascii = strcmp(optarg, "ascii") == 0;
			bit = TO_FORMAT;
			break;
		case 'C': a->ca = true; bit = TO_CA; break;
		case 'S': a->dn = optarg; bit = TO_SUBJECT; break;
		case 'n': a->nick = optarg; bit = TO_NICK; break;
		case L_TOKEN: a->token = optarg; bit = TO_TOKEN; break;
		case L_MODULE: a->module = optarg; bit = TO_MODULE; break;
		case L_MODFILE: a->modules_file = optarg; bit = TO_MODFILE; break;
		case L_NAME: a->cn = optarg; bit = TO_SUBJECT; break;
		case L_ORG: a->org = optarg; bit = TO_SUBJECT; break;
		case L_OU: a->ou = optarg; bit = TO_SUBJECT; break;
		case L_CITY: a->city = optarg; bit = TO_SUBJECT; break;
		case L_STATE: a->state = optarg; bit = TO_SUBJECT; break;
		case L_COUNTRY: a->country = optarg; bit = TO_SUBJECT; break;
		case L_SAN:
			if (a->nsans == TOKENS_MAX_SANS) {
				tok_fail(TOK_EUSAGE, "at most %d --san options", TOKENS_MAX_SANS);
				return 1;
			}
			a->sans[a->nsans++] = optarg;
			bit = TO_SUBJECT;
			break;
		case L_DAYS: {
			char *end;
			long d = strtol(optarg, &end, 10);

			if (*end != '\0' || d < 1 || d > 36500) {
				tok_fail(TOK_EUSAGE, "--days takes 1..36500");
				return 1;
			}
			a->days = (int)d;
			bit = TO_DAYS;
			break;
		}
		case L_KEY: a->key = optarg; bit = TO_KEY; break;
		case L_TRUST: a->trust = optarg; bit = TO_TRUST; break;
		case L_LABEL: a->label = optarg; bit = TO_LABEL; break;
		case L_NEWPIN: a->newpin_file = optarg; bit = TO_NEWPIN; break;
		case L_NOP11KIT: a->no_p11kit = true; bit = TO_NOP11KIT; break;
		case L_FORCE: a->force = true; bit = TO_FORCE; break;
		case L_HELP: return 2;
		case ':':
			tok_fail(TOK_EUSAGE, "option %s needs a value", argv[optind - 1]);
			return 1;
		default:
			tok_fail(TOK_EUSAGE, "unknown option %s (see tokens %s --help)",
				 argv[optind - 1], c->name);
			return 1;
		}
		if ((c->opts & bit) == 0) {
			tok_fail(TOK_EUSAGE, "%s does not take option %s (see tokens %s --help)",
				 c->name, argv[optind - 1], c->name);
			return 1;
		}
		a->given |= bit;
	}
	a->pos = argv + optind;
	a->npos = argc - optind;
	if (a->npos < c->min_pos || a->npos > c->max_pos) {
		tok_fail(TOK_EUSAGE, "%s takes %d to %d arguments, not %d (see tokens %s --help)",
			 c->name, c->min_pos, c->max_pos, a->npos, c->name);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const struct tokens_cmd *c = NULL;
	struct tokens_args a;
	char *err = NULL;
	int skip = 1, rc;

	if (sp_log_open("tokens", NULL, SP_LOG_WARN, &err) < 0) {
		fprintf(stderr, "tokens: %s\n", err);
		free(err);
		return TOK_EFAIL;
	}
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage_all(argc < 2 ? stderr : stdout);
		return argc < 2 ? TOK_EUSAGE : TOK_OK;
	}
	if (argc >= 3 && argv[2][0] != '-') {
		char *name = sp_xasprintf("%s %s", argv[1], argv[2]);

		c = find_cmd(name);
		if (c != NULL)
			skip = 2;
		free(name);
	}
	if (c == NULL)
		c = find_cmd(argv[1]);
	/* the anchor spells it generate-certDB */
	if (c == NULL && strcasecmp(argv[1], "generate-certdb") == 0)
		c = find_cmd("generate-certdb");
	if (c == NULL) {
		tok_fail(TOK_EUSAGE, "unknown sub-command \"%s\"", argv[1]);
		usage_all(stderr);
		return TOK_EUSAGE;
	}
	memset(&a, 0, sizeof(a));
	a.cmd = c->name;
	rc = parse(argc - skip, argv + skip, c, &a);  /* argv[0]: the sub-command */
	if (rc == 2) {
		usage_cmd(stdout, c);
		return TOK_OK;
	}
	if (rc != 0)
		return TOK_EUSAGE;
	rc = c->run(&a);
	ERR_clear_error();
	sp_log_forget_secrets();
	return rc;
}
