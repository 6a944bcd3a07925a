# SPDX-License-Identifier: MIT
# Turns the flame graph assets into C strings: cmake -DJS=.. -DCSS=.. -DOUT=.. -P embed.cmake
function(embed var file out)
  file(READ ${file} hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
  string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n\t" hex "${hex}")
  file(APPEND ${out} "const char ${var}[] = {\n\t${hex}0x00\n};\n")
endfunction()
file(WRITE ${OUT} "/* Generated from output/assets by embed.cmake: do not edit. */\n")
file(APPEND ${OUT} "extern const char ms_asset_flame_js[], ms_asset_flame_css[];\n")
embed(ms_asset_flame_js ${JS} ${OUT})
embed(ms_asset_flame_css ${CSS} ${OUT})
