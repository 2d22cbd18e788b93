package cluster_test

import (
	"github.com/wharf-registry/wharf/api/oci"
	"github.com/wharf-registry/wharf/cluster"
)

var _ oci.Metadata = (*cluster.Node)(nil)
