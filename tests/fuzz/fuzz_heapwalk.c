// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the fuzz input overwrites the synthetic heap and arena,
 * the walker must end without a crash, a hang or a read outside the image.
 */
#include "../unit/heap_synth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct synth s;
	struct ms_heap_report rep;
	struct ms_reader r = {.read = synth_read, .ctx = &s};
	size_t n;

	if (synth_build(&s) != 0)
		return 0;
	/* First half of the input patches the heap, the rest the arena and mp_. */
	n = size / 2 < SY_HEAP_LEN ? size / 2 : SY_HEAP_LEN;
	for (size_t i = 0; i + 3 <= n; i += 3) {
		uint16_t off = (uint16_t)((data[i] | data[i + 1] << 8) % SY_HEAP_LEN);

		s.heap[off] = data[i + 2];
	}
	for (size_t i = size / 2; i + 3 <= size; i += 3) {
		uint16_t off = (uint16_t)((data[i] | data[i + 1] << 8) % SY_DATA_LEN);

		s.data[off] = data[i + 2];
	}
	ms_heap_walk(&s.loc, &r, &s.maps, &rep);
	ms_heap_report_free(&rep);
	ms_maps_free(&s.maps);
	return 0;
}
