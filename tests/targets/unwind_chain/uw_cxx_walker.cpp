// SPDX-License-Identifier: MIT
/* uwns::Walker<int>::step, the C++ link that blocks (see uw_cxx.hpp). */
#include "uw_cxx.hpp"
#include "uw.h"

template <typename T> __attribute__((noinline)) int uwns::Walker<T>::step(T x, int fd)
{
	long r = uw_block_read(fd);

	uw_sink = (int)r;
	return (int)(r + x + base);
}
template struct uwns::Walker<int>;
