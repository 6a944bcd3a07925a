// SPDX-License-Identifier: MIT
/* uwns::descend<long>, the C++ link above Walker<int>::step (see uw_cxx.hpp). */
#include "uw_cxx.hpp"
#include "uw.h"

template <typename T> __attribute__((noinline)) long uwns::descend(T x, int fd)
{
	uwns::Walker<int> w{1};
	long r = w.step((int)x, fd);

	uw_sink = (int)r;
	return r + 1;
}
template long uwns::descend<long>(long, int);
