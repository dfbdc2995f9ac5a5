/* Unit tests for the mapping tables (mailcore/mappings_parse.c,
 * mappings_match.c): the reference's examples, wildcards and captures,
 * subnets, flags, $C chains, and parse errors naming the line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "mailcore/mailcore.h"

static struct mappings *parse_ok(const char *text)
{
	char *err = NULL;
	struct mappings *m = mappings_parse("mappings", text, strlen(text), &err);

	if (m == NULL)
		fail_msg("unexpected parse error: %s", err);
	return m;
}

static void parse_fails(const char *text, const char *expect)
{
	char *err = NULL;
	struct mappings *m = mappings_parse("mappings", text, strlen(text), &err);

	if (m != NULL)
		fail_msg("parsed, expected error %s", expect);
	if (strstr(err, expect) == NULL)
		fail_msg("error \"%s\" does not contain \"%s\"", err, expect);
	free(err);
}

static void lookup(const struct mappings *m, const char *table, const char *probe,
		   enum mapping_verdict verdict, const char *text)
{
	struct mapping_result r;

	mappings_lookup(m, table, probe, &r);
	if (r.verdict != verdict)
		fail_msg("%s %s: verdict %d, expected %d", table, probe, r.verdict, verdict);
	if (text != NULL && strcmp(r.text, text) != 0)
		fail_msg("%s %s: text \"%s\", expected \"%s\"", table, probe, r.text, text);
}

/* The anchor's rate-limit rule on FROM_ACCESS, without its callout:
 * TCP|*|SMTP*|MAIL|tcp_*|*|*  ->  $X4.2.3|$NRate$ too$ high$E */
static void test_reference_from_access(void **state)
{
	struct mappings *m = parse_ok("FROM_ACCESS\n"
				      "  TCP|*|SMTP*|MAIL|tcp_*|*|*   $X4.2.3|$NRate$ too$ high$E\n");
	struct mapping_result r;

	(void)state;
	mappings_lookup(m, "FROM_ACCESS",
			"TCP|192.0.2.25|587|198.51.100.7|40000|SMTP/ESMTPA|MAIL|tcp_auth|alice@example.com|alice@example.com",
			&r);
	assert_int_equal(r.verdict, MAPPING_REJECT);
	assert_string_equal(r.status, "4.2.3");
	assert_string_equal(r.text, "Rate too high");
	assert_int_equal(r.smtp_code, 0);
	/* the application field must start with SMTP */
	lookup(m, "FROM_ACCESS", "TCP|192.0.2.25|25|198.51.100.7|40000|LMTP|MAIL|tcp_local|a@b|",
	       MAPPING_NO_MATCH, NULL);
	/* the callout itself is refused, naming the line */
	parse_fails("FROM_ACCESS\n  TCP|*  $C$[IMTA_LIB:check_memcache.so,throttle]$Y\n", "mappings:2:");
	mappings_free(&m);
}

/* The anchor's FILTER_limitauthspam exemptions: *|is-spam@* $N$E ... */
static void test_reference_exemptions(void **state)
{
	struct mappings *m = parse_ok("! exemptions first, then everyone\n"
				      "FILTER_limitauthspam\n"
				      "*|is-spam@*                $N$E\n"
				      "*|not-spam@*               $N$E\n"
				      "*|abuse@*                  $N$E\n"
				      "*|postmaster@*             $N$E\n"
				      "*|*                        $Y\n");

	(void)state;
	lookup(m, "FILTER_limitauthspam", "alice@example.com|abuse@example.org", MAPPING_REJECT, "");
	lookup(m, "filter_limitauthspam", "alice@example.com|Postmaster@example.org", MAPPING_REJECT, "");
	lookup(m, "FILTER_limitauthspam", "alice@example.com|bob@example.org", MAPPING_ACCEPT, "");
	mappings_free(&m);
}

static void test_internal_ip_subnets(void **state)
{
	struct mappings *m = parse_ok("INTERNAL_IP\n"
				      "  $(192.168.0.0/16)   $Y\n"
				      "  $(10.1.2.3/8)       $Y\n"
				      "  $(2001:db8::/32)    $Y\n"
				      "  127.0.0.1           $Y\n"
				      "  *                   $N\n");

	(void)state;
	lookup(m, "INTERNAL_IP", "192.168.44.5", MAPPING_ACCEPT, NULL);
	lookup(m, "INTERNAL_IP", "10.200.0.1", MAPPING_ACCEPT, NULL); /* host bits ignored */
	lookup(m, "INTERNAL_IP", "2001:db8:ffff::1", MAPPING_ACCEPT, NULL);
	lookup(m, "INTERNAL_IP", "::ffff:192.168.1.1", MAPPING_ACCEPT, NULL);
	lookup(m, "INTERNAL_IP", "127.0.0.1", MAPPING_ACCEPT, NULL);
	lookup(m, "INTERNAL_IP", "127.0.0.2", MAPPING_REJECT, NULL);
	lookup(m, "INTERNAL_IP", "192.169.0.1", MAPPING_REJECT, NULL);
	lookup(m, "INTERNAL_IP", "2001:db9::1", MAPPING_REJECT, NULL);
	lookup(m, "INTERNAL_IP", "not-an-ip", MAPPING_REJECT, NULL);
	mappings_free(&m);
}

static void test_port_access_probe(void **state)
{
	struct mappings *m = parse_ok("PORT_ACCESS\n"
				      "  TCP|*|25|$(198.51.100.0/24)|*   $N554$ Not$ from$ there\n"
				      "  TCP|*|587|*|*                    $Y\n"
				      "  *                                 $Y\n");
	struct mapping_result r;

	(void)state;
	mappings_lookup(m, "PORT_ACCESS", "TCP|192.0.2.25|25|198.51.100.7|40000", &r);
	assert_int_equal(r.verdict, MAPPING_REJECT);
	assert_int_equal(r.smtp_code, 554);
	assert_string_equal(r.text, "Not from there");
	lookup(m, "PORT_ACCESS", "TCP|192.0.2.25|587|198.51.100.7|40000", MAPPING_ACCEPT, NULL);
	lookup(m, "PORT_ACCESS", "TCP|192.0.2.25|25|203.0.113.7|40000", MAPPING_ACCEPT, NULL);
	/* a '*' cannot cut an address in half to make a subnet match */
	{
		struct mappings *m2 = parse_ok("T\n  *$(0.0.0.0/1)  $N\n");

		lookup(m2, "T", "a|200.1.2.3", MAPPING_NO_MATCH, NULL);
		lookup(m2, "T", "a|100.1.2.3", MAPPING_REJECT, NULL);
		mappings_free(&m2);
	}
	mappings_free(&m);
}

static void test_send_access_captures(void **state)
{
	struct mappings *m = parse_ok("SEND_ACCESS\n"
				      "  tcp_local|*@%.example|*|*   $NNo$ mail$ from$ $0$ at$ $1\n"
				      "  tcp_*|*|tcp_local|*@*      $N$3$ is$ not$ local\n");
	char probe[256];
	size_t pos = 0;

	(void)state;
	lookup(m, "SEND_ACCESS", "tcp_local|Spammer@X.example|ims-ms|alice@example.com",
	       MAPPING_REJECT, "No mail from Spammer at X");
	lookup(m, "SEND_ACCESS", "tcp_intranet|a@b.example|tcp_local|x@remote.example",
	       MAPPING_REJECT, "remote.example is not local");
	lookup(m, "SEND_ACCESS", "tcp_intranet|a@b.example|ims-ms|x@example.com", MAPPING_NO_MATCH, NULL);
	lookup(m, "NO_SUCH_TABLE", "x", MAPPING_NO_MATCH, NULL);
	lookup(NULL, "SEND_ACCESS", "x", MAPPING_NO_MATCH, NULL);
	/* a '|' inside an address cannot forge a field */
	assert_int_equal(smtp_probe_field(probe, sizeof(probe), &pos, "\"a|tcp_intranet\"@x"), 0);
	assert_string_equal(probe, "\"a%7Ctcp_intranet\"@x");
	mappings_free(&m);
}

static void test_continue_chain(void **state)
{
	struct mappings *m = parse_ok("CHAIN\n"
				      "  a*    $C$0x\n"
				      "  *x    $NGot$ $0\n"
				      "  b*    $Y$Cfirst\n"
				      "  zz    $N\n");
	struct mapping_result r;

	(void)state;
	/* "abc" -> "bcx" (continue) -> matches *x */
	lookup(m, "CHAIN", "abc", MAPPING_REJECT, "Got bc");
	/* a $C whose later entries do not match keeps its own verdict */
	mappings_lookup(m, "CHAIN", "bq", &r);
	assert_int_equal(r.verdict, MAPPING_ACCEPT);
	assert_string_equal(r.text, "first");
	/* quoted characters */
	mappings_free(&m);
	m = parse_ok("Q\n  a$*b$%c$$d$|e   $N$$$|$ $*\n");
	lookup(m, "Q", "a*b%c$d|e", MAPPING_REJECT, "$| *");
	lookup(m, "Q", "axb%c$d|e", MAPPING_NO_MATCH, NULL);
	mappings_free(&m);
}

static void test_pathological_pattern(void **state)
{
	struct mappings *m = parse_ok("P\n  *a*a*a*a*a*a*a*a*b   $N\n");
	char probe[MAPPINGS_MAX_PROBE + 1];

	(void)state;
	memset(probe, 'a', MAPPINGS_MAX_PROBE);
	probe[MAPPINGS_MAX_PROBE] = '\0';
	lookup(m, "P", probe, MAPPING_NO_MATCH, NULL); /* O(n*m), not exponential */
	probe[MAPPINGS_MAX_PROBE - 1] = 'b';
	lookup(m, "P", probe, MAPPING_REJECT, NULL);
	mappings_free(&m);
}

static void test_parse_errors(void **state)
{
	(void)state;
	parse_fails("  *  $Y\n", "mappings:1: entry before any table name");
	parse_fails("T\n  a b c\n", "mappings:2: more than two fields");
	parse_fails("T\n\n  lonely\n", "mappings:3: entry without a template");
	parse_fails("T\n  $(10.0.0.0/33)  $Y\n", "mappings:2: bad subnet");
	parse_fails("T\n  $(10.0.0/8)  $Y\n", "mappings:2: bad subnet");
	parse_fails("T\n  $(10.0.0.0/8  $Y\n", "mappings:2: bad subnet");
	parse_fails("T\n  *  $D$Y\n", "mappings:2: unsupported flag");
	parse_fails("T\n  *  ${db}\n", "mappings:2: callouts");
	parse_fails("T\n  *  $1\n", "mappings:2: template refers to a wildcard");
	parse_fails("T\n  *  $Y$\n", "mappings:2: template ends");
	parse_fails("T\n  a$q  $Y\n", "mappings:2: unsupported '$'");
	parse_fails("T\n  *  $Y\nt\n", "mappings:3: table defined twice");
	parse_fails("BAD*NAME\n", "mappings:1: bad table name");
	parse_fails("T\n  a\x01  $Y\n", "mappings:2: control character");
}

static void test_comments_and_layout(void **state)
{
	struct mappings *m = parse_ok("! a comment\n"
				      "\n"
				      "ONE\r\n"
				      "   ! indented comment\n"
				      "\tx\t$Y\n"
				      "TWO\n"
				      "y $N\n");

	(void)state;
	assert_true(mappings_has_table(m, "one"));
	assert_true(mappings_has_table(m, "TWO"));
	assert_false(mappings_has_table(m, "THREE"));
	lookup(m, "ONE", "X", MAPPING_ACCEPT, NULL);
	lookup(m, "TWO", "y", MAPPING_REJECT, NULL);
	lookup(m, "TWO", "x", MAPPING_NO_MATCH, NULL);
	mappings_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reference_from_access),
		cmocka_unit_test(test_reference_exemptions),
		cmocka_unit_test(test_internal_ip_subnets),
		cmocka_unit_test(test_port_access_probe),
		cmocka_unit_test(test_send_access_captures),
		cmocka_unit_test(test_continue_chain),
		cmocka_unit_test(test_pathological_pattern),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_comments_and_layout),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
