// SPDX-License-Identifier: MIT
/* memspy-cov-cxx: a long std::string (beyond the small-string buffer) and its growth. */
#include "sites.h"

#include <string>

namespace covx
{

static growth str;

NOINLINE int site_string(unsigned seed)
{
	std::string s(STR_FIRST, (char)('a' + seed % 26));
	growth g = {s.capacity() + 1, 1}; /* capacity + the terminating NUL */
	size_t cap = s.capacity();
	std::string chunk(STR_CHUNK % 16, 'z'); /* short: stays in the small buffer */
	int ok;

	for (unsigned i = 0; i < STR_APPENDS; i++) {
		for (unsigned k = 0; k < STR_CHUNK / chunk.size(); k++)
			s.append(chunk);
		s.append(STR_CHUNK % chunk.size(), 'y');
		if (s.capacity() != cap) {
			cap = s.capacity();
			g.bytes += cap + 1;
			g.count++;
		}
	}
	cov_escape(&s[0]);
	ok = s.size() == STR_FIRST + (size_t)STR_APPENDS * STR_CHUNK &&
	     s[0] == (char)('a' + seed % 26) && s[STR_FIRST] == 'z';
	__atomic_store_n(&str.bytes, g.bytes, __ATOMIC_RELAXED);
	__atomic_store_n(&str.count, g.count, __ATOMIC_RELAXED);
	return ok;
}

growth string_growth()
{
	return str;
}

} // namespace covx
