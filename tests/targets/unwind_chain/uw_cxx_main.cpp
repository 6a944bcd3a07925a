// SPDX-License-Identifier: MIT
/* C++ unwind test target: like uw_main.c, with demangled names expected. */
#include "uw_cxx.hpp"
#include "uw.h"

#include <cstdio>

volatile int uw_sink;

int main()
{
	std::printf("EXPECT main uwns::descend<long> uwns::Walker<int>::step uw_block_read\n");
	std::printf("READY\n");
	std::fflush(stdout);
	return uwns::descend<long>(2, 0) > 0 ? 0 : 1;
}
