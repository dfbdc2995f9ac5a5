/* libFuzzer target for the client access filter parser and evaluator
 * (mailcore/filter_parse.c, filter_eval.c): any text must parse or fail
 * cleanly within the bounds, and whatever parses must evaluate, for
 * clients with and without names, addresses and users. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mailcore/filter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_in v4 = {.sin_family = AF_INET};
	struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
	struct filter *f;
	struct filter_decision d;
	char *err = NULL;
	uint8_t flags;

	if (size < 1)
		return 0;
	flags = data[0];
	f = filter_new();
	if (filter_add(f, (flags & 1) ? FILTER_DENY : FILTER_ALLOW, (const char *)data + 1,
		       size - 1, &err) < 0) {
		if (err == NULL || filter_rule_count(f) != 0)
			abort();
		free(err);
		filter_free(&f);
		return 0;
	}
	if (filter_rule_count(f) > FILTER_MAX_RULES)
		abort();
	inet_pton(AF_INET, "192.0.2.77", &v4.sin_addr);
	inet_pton(AF_INET6, "2001:db8::77", &v6.sin6_addr);
	{
		const struct filter_query queries[] = {
			{.service = "imap", .client = (struct sockaddr *)&v4,
			 .client_name = "pc.example.com", .client_name_verified = true},
			{.service = "pop", .client = (struct sockaddr *)&v6, .client_name = "x",
			 .user = "alice@example.com", .server = (struct sockaddr *)&v4,
			 .server_name = "mail.example.com"},
			{.service = "http"},
			{.service = NULL, .client_name = "", .user = ""},
		};

		for (size_t i = 0; i < sizeof(queries) / sizeof(queries[0]); i++) {
			filter_eval(f, &queries[i], &d);
			if (d.rule >= (int)filter_rule_count(f) || d.rule < -1)
				abort();
		}
	}
	filter_free(&f);
	return 0;
}
