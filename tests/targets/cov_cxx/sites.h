/* SPDX-License-Identifier: MIT */
/*
 * memspy-cov-cxx: C++ allocation call sites, one per file, never inlined:
 * every form of operator new/delete, std::vector growth, long std::string.
 */
#ifndef COV_CXX_SITES_H
#define COV_CXX_SITES_H

#include "cov.h"

#define NEW_BYTES     1003 /* sizeof(covx::Obj) */
#define NEWARR_BYTES  2011
#define NOTHROW_BYTES 1013 /* sizeof(covx::NoThrowObj) */
#define ALIGNED_ALIGN 64
#define ALIGNED_BYTES 1088 /* sizeof(covx::Aligned): 17 x 64 */
#define KEEP_BYTES    4104 /* sizeof(covx::Keep): a multiple of its alignment */
#define VEC_PUSHES    1000
#define STR_FIRST     300
#define STR_APPENDS   100
#define STR_CHUNK     37

namespace covx
{

/* What one call of a growing site allocated (the same every call). */
struct growth {
	unsigned long long bytes, count;
};

int site_new(unsigned seed);	 /* new Obj / sized delete */
int site_newarr(unsigned seed);	 /* new unsigned char[] / delete[] */
int site_nothrow(unsigned seed); /* new (std::nothrow) / delete */
int site_aligned(unsigned seed); /* new of an alignas(64) type / aligned delete */
int site_vector(unsigned seed);	 /* push_back from empty */
int site_string(unsigned seed);	 /* a long string, then appends */
int site_keep(unsigned seed);	 /* new Keep, kept until the end */
int keep_check(unsigned long long expected);
growth vector_growth();
growth string_growth();

} // namespace covx

#endif
