/* SPDX-License-Identifier: MIT */
/* C++ links for the demangling test: a namespace, a function template and a
 * member of a class template, each in its own file. */
#ifndef UW_CXX_HPP
#define UW_CXX_HPP
namespace uwns {
template <typename T> struct Walker {
	T base;
	int step(T x, int fd);
};
template <typename T> long descend(T x, int fd);
} // namespace uwns
#endif
