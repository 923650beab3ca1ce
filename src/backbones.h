/* Building a backbone's network from its row in the table of backbones.c. */
#ifndef HS_BACKBONES_H
#define HS_BACKBONES_H

#include "headstart.h"
#include "net.h"

/* Appends the layers of info's backbone, with its ImageNet head, to the empty net. */
hs_status hs_build_backbone(hs_net *net, const hs_backbone_info *info, hs_error *err);

#endif
