/* libFuzzer target: the check every name from a PTR record passes
 * (mc_name_clean, mailcore/mc_resolve.h) on arbitrary bytes. What it
 * accepts must be a host name the SMTP header code also accepts (when it
 * has no '_'), never a numeric address, and must come out unchanged when
 * checked again. */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mailcore/mc_file.h"
#include "mailcore/mc_resolve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char name[1100], again[1100];
	unsigned char addr[16];
	size_t len;

	if (size >= sizeof(name))
		size = sizeof(name) - 1;
	memcpy(name, data, size);
	name[size] = '\0';
	if (mc_name_clean(name) < 0)
		return 0;
	len = strlen(name);
	if (len == 0 || len > MC_NAME_MAX || name[len - 1] == '.')
		abort();
	if (inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1)
		abort();
	for (size_t i = 0; i < len; i++)
		if (name[i] >= 'A' && name[i] <= 'Z')
			abort();
	if (strchr(name, '_') == NULL && strstr(name, ".-") == NULL && strstr(name, "-.") == NULL &&
	    name[0] != '-' && name[len - 1] != '-' && !mc_valid_hostname(name, len))
		abort();
	memcpy(again, name, len + 1);
	if (mc_name_clean(again) < 0 || strcmp(again, name) != 0)
		abort();
	return 0;
}
